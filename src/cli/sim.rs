//! `firedrill sim serve`: serve one cluster of the simulated estate as a Kubernetes API until
//! interrupted.

use super::{Failure, ServeArgs, internal, invalid, load_environment};
use crate::exit;

pub(super) fn serve(a: ServeArgs) -> Result<i32, Failure> {
    let env = load_environment(&a.env)?;
    let provider = crate::backend::sim::SimProvider::new(&env, a.seed)
        .map_err(|d| invalid(&d, Some(&env.source)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| internal(format!("cannot start the runtime: {e}")))?;
    let opts = crate::sim::kube_api::ServeOptions {
        listen: a.listen,
        cluster: a.cluster,
        kubeconfig_out: a.kubeconfig_out,
        token: a.token,
    };
    runtime
        .block_on(crate::sim::kube_api::serve_estate(provider, opts))
        .map_err(|m| Failure {
            code: exit::INVALID_INPUT,
            message: format!("error: {m}"),
        })?;
    Ok(exit::PASS)
}
