//! Built-in engines behind one trait, and the registry that finds them.
//!
//! An engine is real code doing real work. It declares what it offers
//! ([`catalog::EngineDecl`]); the plan checks scenarios against those
//! declarations and the interpreter drives it through [`Engine`],
//! [`Operation`] and [`OpWorker`].
//!
//! **Architecture invariant:** engines know nothing of YAML, plans or reports.
//! They receive checked [`Params`] and record into a [`Recorder`].

pub mod catalog;
pub mod params;
pub mod recorder;
pub use crate::rng;

use std::sync::Arc;

pub use catalog::{Better, Derive, EngineDecl, Merge, MetricDecl, MetricKind, OpDecl, OptionDecl, ValueType};
pub use params::{Params, Value};
pub use recorder::Recorder;

/// A failure inside an engine: an operation that failed, or setup that could not be done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    /// What went wrong.
    pub message: String,
}

impl EngineError {
    /// An error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        EngineError { message: message.into() }
    }
}

/// What an engine instance is created from.
#[derive(Clone, Debug)]
pub struct EngineSetup {
    /// Checked options, defaults filled in.
    pub options: Params,
    /// Seed for any random choice the engine makes.
    pub seed: u64,
}

/// Why options or parameters that have the right types still cannot work
/// (an unknown model, a prompt longer than the context), found before anything runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The option or parameter at fault.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// A kind of engine: its declarations and how to create an instance.
pub trait EngineKind: Sync {
    /// What the engine offers.
    fn decl(&self) -> &'static EngineDecl;
    /// Checks an instance's options beyond their types; cheap, runs at validation.
    fn validate(&self, _options: &Params) -> Result<(), Invalid> {
        Ok(())
    }
    /// Checks one operation's parameters against the instance's options.
    fn validate_op(&self, _options: &Params, _op: &str, _params: &Params) -> Result<(), Invalid> {
        Ok(())
    }
    /// Creates an instance with checked options.
    fn create(&self, setup: &EngineSetup) -> Result<Arc<dyn Engine>, EngineError>;
}

/// A configured engine instance, shared by the runs that use the same options.
pub trait Engine: Send + Sync {
    /// Prepares operation `op` with checked parameters.
    fn operation(&self, op: &str, params: &Params) -> Result<Arc<dyn Operation>, EngineError>;

    /// Prepares an operation that runs other engines' operations (a
    /// workflow's `steps`, in order). Engines without such operations keep
    /// this default.
    fn linked_operation(
        &self,
        op: &str,
        params: &Params,
        _steps: Vec<Arc<dyn Operation>>,
    ) -> Result<Arc<dyn Operation>, EngineError> {
        self.operation(op, params)
    }
}

/// What one workflow step hands to the next: a key (where the data was
/// stored, if anywhere) and the data itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// A key, set by a step that stored the data.
    pub key: Vec<u8>,
    /// The data.
    pub data: Vec<u8>,
}

/// A prepared operation; hands out one worker per concurrent caller.
pub trait Operation: Send + Sync {
    /// A worker for caller number `index`, with its own state.
    fn worker(&self, index: usize, seed: u64) -> Result<Box<dyn OpWorker>, EngineError>;
}

/// One caller's state; `call` performs the operation once.
pub trait OpWorker: Send {
    /// Performs the operation once, recording engine metrics into `recorder`.
    fn call(&mut self, recorder: &mut Recorder) -> Result<(), EngineError>;

    /// Performs the operation once as a workflow step: takes the previous
    /// step's payload and returns the next one. Operations that neither read
    /// nor produce data keep this default, which passes the payload on.
    fn pipe(&mut self, recorder: &mut Recorder, input: Payload) -> Result<Payload, EngineError> {
        self.call(recorder)?;
        Ok(input)
    }
}

/// Declares each engine's module and lists its kind in the registry, so an
/// engine is added with one line here and its own folder.
macro_rules! engines {
    ($($module:ident :: $kind:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every built-in engine kind, in the order `phasebench list` shows them.
        pub fn registry() -> &'static [&'static dyn EngineKind] {
            &[$(&$module::$kind),*]
        }
    };
}

engines! {
    calibrate::Calibrate,
    llm::Llm,
    vault::VaultKind,
    agents::Agents,
    codec::CodecKind,
    openai::OpenAi,
}

/// The engine kind called `kind`.
pub fn find(kind: &str) -> Option<&'static dyn EngineKind> {
    registry().iter().copied().find(|engine| engine.decl().kind == kind)
}
