//! Wires a source, the pipeline and the sinks from the flags, and shuts them
//! down in order: source stops → pipeline closes the queues → sinks drain,
//! the .mid file is written → return.
//!
//! Signal handling is the binary's; here shutdown is a `CancellationToken`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use buoycast::observation::StationId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::Args;
use crate::control::{self, CONTROL_QUEUE};
use crate::mapping::Map;
use crate::osc::{NullPolicy, OscEncoder};
use crate::pipeline::{Pipeline, PipelineStats};
use crate::sink::midi::{self, MidiEngine, MidiOutputs, PortSpec};
use crate::sink::midi_file::MidiFileWriter;
use crate::sink::{osc as osc_sink, oscquery, SinkQueue, SINK_QUEUE};
use crate::source::{self, replay::ReplayTarget, SourceContext};

/// Queue between the source and the pipeline.
const ITEM_QUEUE: usize = 1024;

/// How long sinks get to drain after the source ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the bridge until the source ends (replay) or `shutdown` fires.
pub async fn run(args: Args, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with_stats(args, shutdown).await.map(|_| ())
}

/// [`run`], returning what the pipeline did (tests and the benchmark use it).
pub async fn run_with_stats(args: Args, shutdown: CancellationToken) -> anyhow::Result<PipelineStats> {
    if args.list_midi {
        let ports = midi::list_ports().context("--list-midi")?;
        println!("MIDI output ports ({}):", midi::BACKEND);
        if ports.is_empty() {
            println!("  (none)");
        }
        for port in ports {
            println!("  {port}");
        }
        return Ok(PipelineStats::default());
    }
    let mut map = match &args.map {
        Some(path) => Map::load(path)?,
        None => Map::builtin(),
    };
    map.spectrum_audible = args.spectrum_audible;
    map.spectrum_channel = args.spectrum_channel;
    if args.cc14 {
        map.check_cc14().map_err(anyhow::Error::msg)?;
    }
    let null_policy: NullPolicy = args.null_policy.parse().map_err(anyhow::Error::msg)?;
    let start = Instant::now();
    let midi_wanted = !args.midi.is_empty() || args.midi_virtual.is_some() || args.midi_file.is_some();

    let stations = args.station.iter().map(|s| StationId::parse(s)).collect::<Result<Vec<_>, _>>()?;
    if let Some(learn) = &args.learn {
        let (field, station) = crate::cli::parse_learn(learn).map_err(anyhow::Error::msg)?;
        if !midi_wanted {
            anyhow::bail!(
                "--learn needs a MIDI output: --midi NAME, --midi-virtual NAME or --midi-file PATH"
            );
        }
        let outputs = open_midi(&args)?;
        let mut engine = MidiEngine::new(map, args.cc14, None);
        engine.preassign(&stations);
        midi::run_learn(field, station, engine, outputs, start, shutdown)
            .await
            .context("writing the MIDI file")?;
        return Ok(PipelineStats::default());
    }

    if args.osc.is_empty() && args.osc_tcp.is_empty() && !midi_wanted && args.oscquery.is_none() {
        anyhow::bail!("no output: give --osc HOST:PORT, --osc-tcp HOST:PORT, --midi NAME, --midi-virtual NAME or --midi-file PATH");
    }

    let mut sink_tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut osc_queues = Vec::new();
    for target in &args.osc {
        let (queue, rx, healthy) = SinkQueue::new(format!("osc udp {target}"), SINK_QUEUE);
        sink_tasks.push(tokio::spawn(osc_sink::run_udp(target.clone(), rx, healthy)));
        osc_queues.push(queue);
    }
    for target in &args.osc_tcp {
        let (queue, rx, healthy) = SinkQueue::new(format!("osc tcp {target}"), SINK_QUEUE);
        sink_tasks.push(tokio::spawn(osc_sink::run_tcp(target.clone(), rx, healthy)));
        osc_queues.push(queue);
    }

    let namespace = match args.oscquery {
        Some(port) => {
            let namespace = Arc::new(
                oscquery::Namespace::new(map.clone(), args.osc_format, None)
                    .with_layout(args.oscquery_layout),
            );
            let bind = args.oscquery_bind;
            let listener = tokio::net::TcpListener::bind((bind, port))
                .await
                .with_context(|| format!("--oscquery {port} on {bind}: cannot listen"))?;
            let bound = listener.local_addr()?.port();
            tracing::info!(port = bound, %bind, "oscquery: serving");
            let mdns = oscquery::advertise(bind, bound);
            let served = namespace.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                oscquery::serve(listener, served, stop).await;
                if let Some(daemon) = mdns {
                    let _ = daemon.shutdown();
                }
            });
            Some(namespace)
        }
        None => None,
    };

    let midi_queue = if midi_wanted {
        let outputs = open_midi(&args)?;
        let glide = args.glide.map(Duration::from_millis);
        let mut engine = MidiEngine::new(map.clone(), args.cc14, glide);
        engine.preassign(&stations);
        let (queue, rx, _healthy) = SinkQueue::new("midi".to_owned(), SINK_QUEUE);
        sink_tasks.push(tokio::spawn(async move {
            if let Err(error) = midi::run(engine, outputs, rx, start).await {
                tracing::error!(error = %error, "midi: cannot write the MIDI file");
            }
        }));
        Some(queue)
    } else {
        None
    };

    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    if let Some(port) = args.control {
        let local = control::serve_port(port, control_tx.clone(), shutdown.clone())
            .await
            .with_context(|| format!("--control {port}: cannot listen on 127.0.0.1:{port}"))?;
        tracing::info!(%local, "control: send /buoycast/resend here for the current state");
        // OSCQuery's HOST_INFO names where the bridge itself receives OSC.
        if let Some(namespace) = &namespace {
            namespace.set_control(Some(local));
        }
    }
    control::on_sigusr1(control_tx.clone(), shutdown.clone());
    if let Some(secs) = args.resend_every {
        control::every(Duration::from_secs_f64(secs), control_tx.clone(), shutdown.clone());
    }
    drop(control_tx);

    let (items_tx, items_rx) = mpsc::channel(ITEM_QUEUE);
    let ctx =
        SourceContext { items_tx, start, stations, shutdown: shutdown.clone(), snapshot: !args.no_snapshot };
    let lossless = args.replay.is_some();
    let source_task: JoinHandle<anyhow::Result<()>> = if let Some(replay) = &args.replay {
        let target = ReplayTarget::parse(replay)?;
        let (source_url, speed) = (args.source.clone(), args.speed);
        tokio::spawn(async move {
            let n = source::replay::run(target, source_url, speed, ctx).await?;
            tracing::info!(n_observations = n, "replay finished");
            Ok(())
        })
    } else if let Some(redis_url) = &args.redis {
        tokio::spawn(source::redis::run(redis_url.clone(), ctx))
    } else if args.ws || args.source.starts_with("ws://") || args.source.starts_with("wss://") {
        tokio::spawn(source::ws::run(args.source.clone(), ctx))
    } else {
        tokio::spawn(source::sse::run(args.source.clone(), ctx))
    };

    // OSCQuery records what the OSC destinations are sent: one encoder for both.
    let encoder = (!osc_queues.is_empty() || namespace.is_some()).then(|| OscEncoder {
        format: args.osc_format,
        null_policy,
        bundle: args.bundle,
        map: map.clone(),
        latency: args.latency.map(Duration::from_millis),
    });
    let pipeline = Pipeline {
        encoder,
        osc: osc_queues,
        midi: midi_queue,
        namespace,
        lossless,
        control: Some(control_rx),
        start,
        start_wall: std::time::SystemTime::now() - start.elapsed(),
        shaper: Some(crate::shape::Shaper::new(&map)).filter(crate::shape::Shaper::is_on),
    };
    let stats = pipeline.run(items_rx).await;
    let source_result = source_task.await.context("the source task panicked")?;

    let drained = tokio::time::timeout(DRAIN_TIMEOUT, futures::future::join_all(sink_tasks)).await;
    if drained.is_err() {
        tracing::warn!("sinks did not drain within {}s", DRAIN_TIMEOUT.as_secs());
    }
    shutdown.cancel();
    if stats.n_dropped > 0 {
        tracing::warn!(n_dropped = stats.n_dropped, "osc frames dropped by full queues");
    }
    source_result?;
    Ok(stats)
}

fn open_midi(args: &Args) -> anyhow::Result<MidiOutputs> {
    let mut ports = Vec::new();
    for name in &args.midi {
        ports.push(
            midi::open_port(PortSpec::Named(name.clone())).with_context(|| format!("--midi {name:?}"))?,
        );
    }
    if let Some(name) = &args.midi_virtual {
        ports.push(
            midi::open_port(PortSpec::Virtual(name.clone()))
                .with_context(|| format!("--midi-virtual {name:?}"))?,
        );
    }
    Ok(MidiOutputs { ports, file: args.midi_file.as_deref().map(MidiFileWriter::new) })
}
