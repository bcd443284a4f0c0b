// buoycast's live stream in Node: prints every observation as one JSON line.
//
// Run (Node 18 or later; the gateway on 127.0.0.1:3000, e.g. `cargo run --release`):
//   cd examples/node && npm install
//   node client.mjs                                  # every station
//   node client.mjs --station 46026,46042 --fields waveHeightM,windSpeedMps
//   node client.mjs --url http://gateway:3000 --count 10   # exit after 10 observations
//
// The `eventsource` package reconnects by itself and sends Last-Event-ID,
// so the gateway replays whatever was missed (docs/API.md, Catch-up). Status lines go to
// stderr; stdout carries only observations.
import { EventSource } from 'eventsource';

const args = parseArgs(process.argv.slice(2));
const url = new URL('/v1/observations/stream', args.url ?? 'http://127.0.0.1:3000');
if (args.station) url.searchParams.set('station', args.station);
if (args.fields) url.searchParams.set('fields', args.fields);
if (args.token) url.searchParams.set('access_token', args.token);
const count = args.count ? Number(args.count) : Infinity;

let received = 0;
const source = new EventSource(url);

source.addEventListener('connection', (event) => {
  console.error(`connected to ${url} ${event.data}`);
});
source.addEventListener('observation', (event) => {
  const observation = JSON.parse(event.data);
  console.log(JSON.stringify(observation));
  received += 1;
  if (received >= count) {
    source.close();
    process.exit(0);
  }
});
source.addEventListener('reset', (event) => {
  // Our last id is too old to replay: fetch history over REST to fill the gap.
  console.error(`reset ${event.data}: refetch /v1/observations for the gap`);
});
source.addEventListener('lagged', (event) => {
  console.error(`lagged ${event.data}: reconnecting and catching up`);
});
source.onerror = (error) => {
  console.error(`stream error (${error.message ?? 'disconnected'}); reconnecting`);
};

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const match = /^--([a-z]+)$/.exec(argv[i]);
    if (!match || i + 1 >= argv.length) {
      console.error(`usage: node client.mjs [--url URL] [--station IDS] [--fields NAMES] [--token T] [--count N]`);
      process.exit(2);
    }
    out[match[1]] = argv[(i += 1)];
  }
  return out;
}
