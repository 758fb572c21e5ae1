//! `phasebench serve`: the llm engine's CPU model behind an OpenAI-compatible
//! HTTP server with continuous batching (docs/serve.md).

use std::time::Duration;

use clap::Args;

use super::inspect::DeviceArg;
use super::Status;
use phasebench::engines::llm::{self, LlmError};
use phasebench::serve::{self, ServeOptions};

/// Arguments of `phasebench serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A preset (tiny, small, base, 1b) or a checkpoint directory.
    #[arg(long)]
    pub model: String,
    /// Where to run: the server runs the CPU model (auto means cpu; cuda is refused).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Port to listen on.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Sequences decoded together at most (1 to 1024).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_batch: u16,
    /// Threads for the model's tensor work (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seed of a preset's random weights, and of requests that name no seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// How long streams in flight may finish after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the command until Ctrl-C or SIGTERM.
pub fn execute(args: ServeArgs) -> Status {
    if args.device == DeviceArg::Cuda {
        eprintln!(
            "error: `phasebench serve` runs the CPU model only: the CUDA model decodes one sequence at a time, \
             with no batched step\n  = hint: use --device cpu (or auto)"
        );
        return Status::InvalidInput;
    }
    raise_open_file_limit();
    let listener = match std::net::TcpListener::bind((args.host.as_str(), args.port)) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}:{}: {error}", args.host, args.port);
            return Status::InvalidInput;
        }
    };
    let loaded = match serve::load(&args.model, args.seed) {
        Ok(loaded) => loaded,
        Err(error @ (LlmError::Input(_) | LlmError::Checkpoint(_))) => {
            eprintln!("error: --model {}: {error}", args.model);
            return Status::InvalidInput;
        }
        Err(error) => {
            eprintln!("error: the model could not be loaded: {error}");
            return Status::Error;
        }
    };
    let pool = match llm::thread_pool(args.threads) {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("error: {error}");
            return Status::Error;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the HTTP runtime: {error}");
            return Status::Error;
        }
    };
    let options = ServeOptions { max_batch: usize::from(args.max_batch), seed: args.seed, grace: SHUTDOWN_GRACE };
    let threads = pool.current_num_threads();
    let name = loaded.served.name.clone();
    let result = runtime.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        eprintln!(
            "serving `{name}` on http://{} (OpenAI API under /v1; max batch {}, {threads} threads; Ctrl-C stops)",
            listener.local_addr()?,
            options.max_batch
        );
        serve::serve(listener, loaded, pool, &options, shutdown_signal()).await.map_err(std::io::Error::other)
    });
    match result {
        Ok(()) => {
            eprintln!("stopped");
            Status::Success
        }
        Err(error) => {
            eprintln!("error: {error}");
            Status::Error
        }
    }
}

/// Resolves on the first Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping: no new connections; streams in flight finish (up to {}s)", SHUTDOWN_GRACE.as_secs());
}

/// Raises the soft limit on open files to the hard limit, so that many
/// client connections fit; a failure leaves the limit as it was.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit read and write the struct passed by pointer, nothing else.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}
