//! Raw cost of handing one task to another thread and seeing it done: the
//! agents engine's three queues (one agent) against crossbeam-channel,
//! flume and tokio's unbounded mpsc as peers, in one run. Each iteration
//! hands over a batch of 10,000 tasks (a counter increment each) and waits
//! until the consumer has run them all; criterion reports the time per batch.
//!
//! `cargo bench --bench queues`; figures in docs/performance.md.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use phasebench::engines::agents::queue::{Pool, QueueKind};

const BATCH: u64 = 10_000;

fn wait_for(done: &AtomicU64, target: u64) {
    while done.load(Ordering::Acquire) < target {
        std::hint::spin_loop();
    }
}

/// Times batches sent through `send` to a consumer thread running `consume`,
/// which counts what it received into its argument; dropping `send` ends it.
fn on_thread(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    send: impl Fn(u64),
    consume: impl FnOnce(Arc<AtomicU64>) + Send + 'static,
) {
    let done = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&done);
    let consumer = std::thread::spawn(move || consume(seen));
    let mut target = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            for i in 0..BATCH {
                send(i);
            }
            target += BATCH;
            wait_for(&done, target);
        })
    });
    drop(send);
    consumer.join().unwrap();
}

fn queues(c: &mut Criterion) {
    let mut group = c.benchmark_group("handoff");
    group.throughput(Throughput::Elements(BATCH));
    for (name, kind) in [
        ("phasebench-mutex", QueueKind::Mutex),
        ("phasebench-lockfree", QueueKind::LockFree),
        ("phasebench-async", QueueKind::Async),
    ] {
        let pool = Pool::start(kind, 1).unwrap();
        let done = Arc::new(AtomicU64::new(0));
        let mut target = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let done = Arc::clone(&done);
                    pool.submit(Box::new(move |_, _| {
                        done.fetch_add(1, Ordering::Release);
                    }));
                }
                target += BATCH;
                wait_for(&done, target);
            })
        });
        pool.close();
    }
    let (sender, receiver) = crossbeam_channel::unbounded::<u64>();
    on_thread(
        &mut group,
        "crossbeam-channel",
        move |i| sender.send(i).unwrap(),
        move |done| {
            while let Ok(v) = receiver.recv() {
                black_box(v);
                done.fetch_add(1, Ordering::Release);
            }
        },
    );
    let (sender, receiver) = flume::unbounded::<u64>();
    on_thread(
        &mut group,
        "flume",
        move |i| sender.send(i).unwrap(),
        move |done| {
            while let Ok(v) = receiver.recv() {
                black_box(v);
                done.fetch_add(1, Ordering::Release);
            }
        },
    );
    {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let done = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&done);
        runtime.spawn(async move {
            while let Some(v) = receiver.recv().await {
                black_box(v);
                seen.fetch_add(1, Ordering::Release);
            }
        });
        let mut target = 0;
        group.bench_function("tokio-mpsc", |b| {
            b.iter(|| {
                for i in 0..BATCH {
                    sender.send(i).unwrap();
                }
                target += BATCH;
                wait_for(&done, target);
            })
        });
        drop(sender);
        runtime.shutdown_background();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = queues
}
criterion_main!(benches);
