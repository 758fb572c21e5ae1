//! How accurately the `openai` engine times a stream, and what it costs.
//!
//! Against the scripted server (`tests/common/scripted_server.rs`), in this
//! process and so on the same clock, at 1 and 64 concurrent streams:
//!
//! - accuracy: each stream runs the engine's own request path
//!   (`openai::exchange`, what every worker's call runs) on its own thread
//!   and current-thread runtime, as workers do, tagging each request
//!   (`user`) so it pairs with the server's record of it. The true `ttft`
//!   is from the client's start of the request to the instant the server
//!   wrote the first token (the request's way to the server is latency a
//!   user waits through, not an error); the error is the measured `ttft`
//!   minus it: how late the client saw the first token. The server's own
//!   time to first token (request read → first token written) is shown too,
//!   to say what the way there costs. The error of each inter-token gap is
//!   the measured gap minus the gap between the two writes (shown as its
//!   absolute value). Token delivery is each token's read instant minus its
//!   write instant.
//! - cost: the engine's workers, built through a plan as `phasebench run`
//!   builds them, each on its own thread; client CPU time (the threads' own
//!   `getrusage(RUSAGE_THREAD)`, so the server in this process is not
//!   counted) per streamed token.
//!
//! Run: `cargo bench --bench openai_client`. Prints a Markdown table.

#[path = "../tests/common/scripted_server.rs"]
mod scripted_server;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use phasebench::engines::openai::exchange;
use phasebench::engines::openai::request::{Connection, Endpoint};
use phasebench::engines::openai::stream::Timeline;
use phasebench::engines::{self, EngineSetup, Recorder};
use phasebench::plan::{self, PlanOptions};
use scripted_server::{Script, ScriptedServer};

const TOKENS: usize = 32;
const FIRST_TOKEN: Duration = Duration::from_millis(10);
const GAP: Duration = Duration::from_millis(4);

/// Requests per stream for the accuracy part and the cost part.
fn requests(streams: usize) -> usize {
    if streams == 1 {
        120
    } else {
        8
    }
}

fn script() -> Script {
    Script { first_token: FIRST_TOKEN, gap: GAP, tokens: TOKENS, ..Script::default() }
}

/// What one stream measured for one request.
struct Measured {
    tag: String,
    start: Instant,
    text_at: Vec<Instant>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Signed difference `a - b` in microseconds.
fn diff_us(a: Duration, b: Duration) -> f64 {
    micros(a) - micros(b)
}

struct Accuracy {
    ttft_error: Vec<f64>,
    itl_error: Vec<f64>,
    /// Client read instant minus server write instant, every token.
    delivery: Vec<f64>,
    /// Client's start of each request to the server's read of it, µs.
    request_trip: Vec<f64>,
    requests: usize,
}

fn accuracy(streams: usize) -> Accuracy {
    let server = ScriptedServer::start(script());
    let connection = Connection {
        endpoint: Endpoint::parse(&server.url).expect("scripted server URL"),
        headers: Connection::headers(None).expect("no key"),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        secret: None,
    };
    let url = connection.endpoint.url("completions");
    let per_stream = requests(streams);
    let measured: Vec<Measured> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams)
            .map(|stream| {
                let (connection, url) = (&connection, &url);
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    let client = connection.client().unwrap();
                    let mut timeline = Timeline::default();
                    let mut out = Vec::new();
                    for request in 0..per_stream {
                        let tag = format!("s{stream}-r{request}");
                        let body = serde_json::json!({
                            "model": "scripted-model", "prompt": "the quick brown fox", "max_tokens": TOKENS,
                            "stream": true, "stream_options": {"include_usage": true}, "user": tag,
                        });
                        timeline.clear();
                        let start = runtime
                            .block_on(exchange(connection, &client, url, body.to_string().into_bytes(), &mut timeline))
                            .unwrap_or_else(|failure| panic!("{tag}: {failure}"));
                        out.push(Measured { tag, start, text_at: timeline.text_at.clone() });
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().unwrap()).collect()
    });
    let truth: HashMap<String, scripted_server::Exchange> =
        server.streamed().into_iter().filter_map(|e| Some((e.tag.clone()?, e))).collect();
    let mut ttft_error = Vec::new();
    let mut itl_error = Vec::new();
    let mut delivery = Vec::new();
    let mut request_trip = Vec::new();
    for request in &measured {
        let server = &truth[&request.tag];
        assert_eq!(request.text_at.len(), server.written.len(), "{}: a token was lost", request.tag);
        ttft_error.push(diff_us(request.text_at[0] - request.start, server.written[0] - request.start));
        request_trip.push(micros(server.arrived.saturating_duration_since(request.start)));
        for (read, written) in request.text_at.iter().zip(&server.written) {
            delivery.push(micros(read.saturating_duration_since(*written)));
        }
        for i in 1..server.written.len() {
            itl_error
                .push(diff_us(request.text_at[i] - request.text_at[i - 1], server.written[i] - server.written[i - 1]));
        }
    }
    ttft_error.sort_by(f64::total_cmp);
    itl_error.iter_mut().for_each(|e| *e = e.abs());
    itl_error.sort_by(f64::total_cmp);
    delivery.sort_by(f64::total_cmp);
    request_trip.sort_by(f64::total_cmp);
    Accuracy { ttft_error, itl_error, delivery, request_trip, requests: measured.len() }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

struct Cost {
    cpu_per_token: Duration,
    tokens: u64,
    wall: Duration,
}

fn cost(streams: usize) -> Cost {
    let server = ScriptedServer::start(script());
    let yaml = format!(
        "scenario: bench\nengines: {{ o: {{ kind: openai, url: \"{}\" }} }}\nphases:\n  - name: p\n    workloads:\n      \
         - {{ name: g, engine: o, op: generate, with: {{ prompt_tokens: 64, max_tokens: {TOKENS} }}, iterations: 1 }}\n",
        server.url
    );
    let document = phasebench::dsl::parse("bench.yaml", yaml).expect("bench scenario parses");
    let plan = plan::build(&document, &PlanOptions::default()).expect("bench scenario checks");
    let spec = plan.runs.into_iter().next().expect("one run");
    let kind = engines::find(spec.engine.kind).expect("openai is built in");
    let engine = kind.create(&EngineSetup { options: spec.engine.options.clone(), seed: 0 }).expect("engine");
    let operation = engine.operation(&spec.op, &spec.params).expect("generate");
    let metrics = kind.decl().metrics.iter().collect::<Vec<_>>();
    let per_stream = requests(streams);
    let began = Instant::now();
    let (cpu, tokens) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams)
            .map(|index| {
                let mut worker = operation.worker(index, index as u64).expect("worker");
                let mut recorder = Recorder::new(&metrics);
                scope.spawn(move || {
                    let before = thread_cpu();
                    for _ in 0..per_stream {
                        worker.call(&mut recorder).expect("call");
                    }
                    let cpu = thread_cpu() - before;
                    let tokens = recorder.counters().iter().find(|(n, _)| *n == "output_tokens").map_or(0, |c| c.1);
                    (cpu, tokens)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).fold((Duration::ZERO, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    Cost { cpu_per_token: cpu / tokens.max(1) as u32, tokens, wall: began.elapsed() }
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to choose.
    println!(
        "Scripted: first token {} ms after the request is read, then one every {} ms, {TOKENS} tokens.\n",
        FIRST_TOKEN.as_millis(),
        GAP.as_millis()
    );
    println!(
        "| streams | requests | ttft error p50 | ttft error p99 | itl error p50 | itl error p99 | token delivery p50 \
         | token delivery p99 | request trip p50 | client CPU per token |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for streams in [1, 64] {
        let accuracy = accuracy(streams);
        let cost = cost(streams);
        println!(
            "| {streams} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.1} µs \
             ({} tokens, {:.1} s) |",
            accuracy.requests,
            percentile(&accuracy.ttft_error, 50.0),
            percentile(&accuracy.ttft_error, 99.0),
            percentile(&accuracy.itl_error, 50.0),
            percentile(&accuracy.itl_error, 99.0),
            percentile(&accuracy.delivery, 50.0),
            percentile(&accuracy.delivery, 99.0),
            percentile(&accuracy.request_trip, 50.0),
            micros(cost.cpu_per_token),
            cost.tokens,
            cost.wall.as_secs_f64(),
        );
    }
}
