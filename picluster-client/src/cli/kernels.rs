//! Custom kernels the command line knows, so that `picluster wait` can merge a
//! custom job's results and print them as JSON. The stock `picluster` binary knows
//! none (it prints each result's range and bytes); a program built with
//! [`main_with`](super::main_with) and a [`Kernels`] list does.

use crate::client::{merge_outputs, ClientError, KernelError};
use picluster_core::kernel::custom::{self, Kernel};
use picluster_core::wire::{ChunkOutput, JobReport};
use serde_json::Value;
use std::collections::BTreeMap;

type Render = fn(&[u8], Vec<ChunkOutput>, JobReport) -> Result<(Option<Value>, u64), ClientError>;

/// Custom kernels whose results the command line can merge and print.
#[derive(Default, Clone)]
pub struct Kernels {
    render: BTreeMap<String, Render>,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.render.keys()).finish()
    }
}

impl Kernels {
    /// No kernels.
    pub fn new() -> Kernels {
        Kernels::default()
    }

    /// Adds kernel `K`.
    pub fn with<K: Kernel>(mut self) -> Kernels {
        self.render.insert(K::NAME.to_string(), render::<K>);
        self
    }

    /// Whether kernel `name` is known.
    pub(super) fn knows(&self, name: &str) -> bool {
        self.render.contains_key(name)
    }

    /// The merged result of a job of kernel `name` (its encoded parameters, its
    /// results and report) as JSON, and the indices it covers; `None` if the kernel
    /// is not known here.
    pub(super) fn merge(
        &self,
        name: &str,
        params: &[u8],
        outputs: Vec<ChunkOutput>,
        report: JobReport,
    ) -> Option<Result<(Option<Value>, u64), ClientError>> {
        let render = self.render.get(name)?;
        Some(render(params, outputs, report))
    }
}

fn render<K: Kernel>(
    params: &[u8],
    outputs: Vec<ChunkOutput>,
    report: JobReport,
) -> Result<(Option<Value>, u64), ClientError> {
    let params = custom::decode_params::<K>(params).map_err(KernelError::Job)?;
    let merged = merge_outputs::<K>(&params, outputs, report)?;
    let json = merged
        .output
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| KernelError::Json(e.to_string()))?;
    Ok((json, merged.covered))
}
