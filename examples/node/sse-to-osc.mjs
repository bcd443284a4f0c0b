// The original system's SSE -> OSC bridge, for buoycast: every observation of
// the live stream becomes one `/observation` message over UDP, exactly as
// buoycast's own `bridge --osc-format observation` sends it:
//   /observation  stationId (s)  timestamp (s)  waveHeightM (f, -1 if null)
//                 windSpeedMps (f, -1)  windDirDeg (i, -1)  waterTempC (f, -999)  pressureHpa (f, -1)
//
// Run (the gateway on 127.0.0.1:3000; a receiver on 57120, e.g. SuperCollider):
//   cd examples/node && npm install
//   node sse-to-osc.mjs --osc 127.0.0.1:57120 [--url http://127.0.0.1:3000] [--station 46026] [--count N]
//
// Prefer the `bridge` binary for real use (per-field messages, MIDI, bundles,
// TCP, replays); this file shows how small a client can be. The OSC encoder
// is written out (no OSC package) so that every argument has its exact type:
// a JavaScript number 7 would otherwise go out as an int, not a float.
import dgram from 'node:dgram';
import { EventSource } from 'eventsource';

const args = parseArgs(process.argv.slice(2));
const [host, port] = (args.osc ?? '127.0.0.1:57120').split(':');
const url = new URL('/v1/observations/stream', args.url ?? 'http://127.0.0.1:3000');
if (args.station) url.searchParams.set('station', args.station);
const count = args.count ? Number(args.count) : Infinity;

const socket = dgram.createSocket('udp4');
const source = new EventSource(url);
let sent = 0;

source.addEventListener('connection', () => console.error(`connected to ${url}; sending to ${host}:${port}`));
source.addEventListener('observation', (event) => {
  const o = JSON.parse(event.data);
  const packet = encodeMessage('/observation', [
    ['s', o.stationId],
    ['s', o.timestamp],
    ['f', o.waveHeightM ?? -1],
    ['f', o.windSpeedMps ?? -1],
    ['i', o.windDirDeg ?? -1],
    ['f', o.waterTempC ?? -999],
    ['f', o.pressureHpa ?? -1],
  ]);
  socket.send(packet, Number(port), host, () => {
    console.log(`/observation ${o.stationId} ${o.timestamp}`);
    sent += 1;
    if (sent >= count) {
      source.close();
      socket.close();
    }
  });
});
source.onerror = (error) => console.error(`stream error (${error.message ?? 'disconnected'}); reconnecting`);

// OSC 1.0: padded address, padded type tags, big-endian arguments.
function encodeMessage(address, args) {
  const parts = [oscString(address), oscString(',' + args.map(([tag]) => tag).join(''))];
  for (const [tag, value] of args) {
    if (tag === 's') parts.push(oscString(String(value)));
    const buffer = Buffer.alloc(4);
    if (tag === 'f') parts.push((buffer.writeFloatBE(value), buffer));
    if (tag === 'i') parts.push((buffer.writeInt32BE(Math.round(value)), buffer));
  }
  return Buffer.concat(parts);
}

function oscString(text) {
  const bytes = Buffer.from(text, 'utf8');
  return Buffer.concat([bytes, Buffer.alloc(4 - (bytes.length % 4))]);
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const match = /^--([a-z]+)$/.exec(argv[i]);
    if (!match || i + 1 >= argv.length) {
      console.error('usage: node sse-to-osc.mjs [--osc HOST:PORT] [--url URL] [--station IDS] [--count N]');
      process.exit(2);
    }
    out[match[1]] = argv[(i += 1)];
  }
  return out;
}
