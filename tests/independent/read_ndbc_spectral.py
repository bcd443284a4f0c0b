#!/usr/bin/env python3
"""Independent reading of NDBC wave-spectrum files (reference for the Rust parser tests).

This script is deliberately simple, uses only the Python 3 standard library, and is
written from the NDBC file formats directly (not from the Rust code). A Rust test runs
it on a fixture file and compares its output value-for-value with the Rust parser.

Usage:  python3 read_ndbc_spectral.py FILE

Prints one JSON object per data row, in file order, to stdout. Rows that cannot be
read are skipped and reported on stderr as "line N: reason" (N is 1-based).

Handled files:
  * Realtime spectral files (41010.data_spec, .swdir, .swdir2, .swr1, .swr2):
    one header line, rows of 5 date fields, (data_spec only) Sep_Freq, then
    "value (freq)" pairs. Output: stationId, timestamp, quantity, [sepFreqHz], bands.
  * Historical yearly spectral files (41010w2019part.txt, 46042w1996.txt, ...):
    the header lists the frequencies; each row holds one value per frequency.
    Quantity from the letter after the station id: w d i j k. j/k values are r*100.
  * Spectral summary files (41010.spec): WVHT SwH SwP WWH WWP SwD WWD STEEPNESS APD MWD.

Missing values (999 for spectra, MM / 99 / 999 for summaries) become JSON null, and so
do out-of-range values (density < 0, directions outside 0..360, r1/r2 outside 0..1).
"""

import json
import math
import os
import re
import sys

DATE_NAMES = {"YY", "YYYY", "MM", "DD", "hh", "mm"}

REALTIME_QUANTITY = {
    "Sep_Freq": "density",
    "spec_1": "density",
    "alpha1_1": "alpha1",
    "alpha2_1": "alpha2",
    "r1_1": "r1",
    "r2_1": "r2",
}

HISTORICAL_QUANTITY = {"w": "density", "d": "alpha1", "i": "alpha2", "j": "r1", "k": "r2"}

COMPASS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE",
           "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"]

SUMMARY_KEYS = [  # (output key, header column, kind)
    ("waveHeightM", "WVHT", "float"),
    ("swellHeightM", "SwH", "float"),
    ("swellPeriodS", "SwP", "float"),
    ("windWaveHeightM", "WWH", "float"),
    ("windWavePeriodS", "WWP", "float"),
    ("swellDirDeg", "SwD", "compass"),
    ("windWaveDirDeg", "WWD", "compass"),
    ("steepness", "STEEPNESS", "word"),
    ("averagePeriodS", "APD", "float"),
    ("meanWaveDirDeg", "MWD", "int"),
]


def num(token):
    """float(token), but refuse nan/inf so the JSON output stays valid."""
    value = float(token)
    if not math.isfinite(value):
        raise ValueError("non-finite number %r" % token)
    return value


def station_id(path):
    """Base name up to the first '.'; for historical names ("41010w2019part.txt")
    the part before the quantity letter + 4-digit year."""
    name = os.path.basename(path)
    base = name.split(".")[0]
    if name == base or name.split(".", 1)[1] == "txt":
        m = re.match(r"^(.*)([wdijk])(\d{4})", base)
        if m and m.group(1):
            base = m.group(1)
    return base.upper()


def timestamp(fields):
    """fields: [year, month, day, hour] or [year, month, day, hour, minute] as strings."""
    year, month, day, hour = (int(t) for t in fields[:4])
    minute = int(fields[4]) if len(fields) > 4 else 0
    if year < 100:
        year = 1900 + year if year >= 50 else 2000 + year
    days_in_month = [31, 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28,
                     31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not (1 <= month <= 12 and 1 <= day <= days_in_month[month - 1]
            and 0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError("bad date/time %s" % " ".join(fields))
    return "%04d-%02d-%02dT%02d:%02d:00Z" % (year, month, day, hour, minute)


def spectral_value(quantity, value):
    """Apply the 999 missing marker and the per-quantity valid range."""
    if value is None or value == 999:
        return None
    if quantity == "density" and value < 0:
        return None
    if quantity in ("alpha1", "alpha2") and not 0 <= value <= 360:
        return None
    if quantity in ("r1", "r2") and not 0 <= value <= 1:
        return None
    return value


def read_realtime(sid, header, rows):
    quantity = REALTIME_QUANTITY.get(header[5]) if len(header) > 5 else None
    if quantity is None:
        raise SystemExit("unknown realtime spectral header: %s" % " ".join(header))
    has_sep = header[5] == "Sep_Freq"
    for n, tokens in rows:
        try:
            stamp = timestamp(tokens[:5])
            rest = tokens[5:]
            out = {"stationId": sid, "timestamp": stamp, "quantity": quantity}
            if has_sep:
                if not rest:
                    raise ValueError("no Sep_Freq")
                sep = num(rest[0])
                out["sepFreqHz"] = None if sep == 999 else sep
                rest = rest[1:]
            if len(rest) % 2 != 0:
                raise ValueError("odd number of value/frequency tokens (%d)" % len(rest))
            bands = []
            for i in range(0, len(rest), 2):
                value_tok, freq_tok = rest[i], rest[i + 1]
                if not (freq_tok.startswith("(") and freq_tok.endswith(")")):
                    raise ValueError("expected (freq), got %r" % freq_tok)
                freq = num(freq_tok[1:-1])
                bands.append({"freqHz": freq, "value": spectral_value(quantity, num(value_tok))})
            out["bands"] = bands
        except (ValueError, IndexError) as err:
            yield n, None, str(err)
            continue
        yield n, out, None


def read_historical(sid, quantity, header, n_date, rows):
    try:
        freqs = [num(t) for t in header[n_date:]]
    except ValueError:
        raise SystemExit("historical header frequencies are not numbers: %s" % " ".join(header))
    for n, tokens in rows:
        try:
            if len(tokens) != n_date + len(freqs):
                raise ValueError("expected %d tokens, got %d" % (n_date + len(freqs), len(tokens)))
            stamp = timestamp(tokens[:n_date])
            bands = []
            for freq, tok in zip(freqs, tokens[n_date:]):
                value = num(tok)
                if quantity in ("r1", "r2") and value != 999:
                    value = float(tok) / 100
                bands.append({"freqHz": freq, "value": spectral_value(quantity, value)})
            out = {"stationId": sid, "timestamp": stamp, "quantity": quantity, "bands": bands}
        except ValueError as err:
            yield n, None, str(err)
            continue
        yield n, out, None


def summary_field(kind, tok):
    if tok == "MM":
        return None
    if kind == "float":
        value = num(tok)
        return None if value == 99 else value
    if kind == "compass":
        if tok in COMPASS:
            return int(math.floor(COMPASS.index(tok) * 22.5 + 0.5))
        return None
    if kind == "int":
        value = int(tok)  # MWD: 999 is the missing marker; 44013.spec also has -99
        return None if value == 999 or not 0 <= value <= 360 else value
    return None if tok == "N/A" else tok  # "word" (steepness)


def read_summary(sid, header, rows):
    index = {name: i for i, name in enumerate(header)}
    missing = [col for _, col, _ in SUMMARY_KEYS if col not in index]
    if missing:
        raise SystemExit("spec header lacks columns: %s" % " ".join(missing))
    for n, tokens in rows:
        try:
            if len(tokens) != len(header):
                raise ValueError("expected %d tokens, got %d" % (len(header), len(tokens)))
            out = {"stationId": sid, "timestamp": timestamp(tokens[:5])}
            for key, col, kind in SUMMARY_KEYS:
                out[key] = summary_field(kind, tokens[index[col]])
        except ValueError as err:
            yield n, None, str(err)
            continue
        yield n, out, None


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: read_ndbc_spectral.py FILE\n")
        return 2
    path = argv[1]
    with open(path, encoding="ascii") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline does not start a line
    if not lines:
        return 0
    header = lines[0].lstrip("#").split()
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if line.startswith("#"):
            continue  # units line
        tokens = line.split()
        if not tokens:
            sys.stderr.write("line %d: blank line\n" % n)
            continue
        rows.append((n, tokens))

    sid = station_id(path)
    n_date = 0
    while n_date < len(header) and header[n_date] in DATE_NAMES:
        n_date += 1

    if "WVHT" in header:
        results = read_summary(sid, header, rows)
    elif len(header) > 5 and header[5] in REALTIME_QUANTITY:
        results = read_realtime(sid, header, rows)
    else:
        m = re.match(r"^(.*)([wdijk])(\d{4})", os.path.basename(path).split(".")[0])
        if not m:
            raise SystemExit("cannot tell the quantity from the file name %s" % path)
        results = read_historical(sid, HISTORICAL_QUANTITY[m.group(2)], header, n_date, rows)

    for n, out, reason in results:
        if out is None:
            sys.stderr.write("line %d: %s\n" % (n, reason))
        else:
            sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
