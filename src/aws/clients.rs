//! The AWS SDK clients a drill uses, built once per run on one ring-only HTTPS client.

use aws_smithy_http_client::{
    Builder,
    tls::{self, rustls_provider::CryptoMode},
};

/// SDK clients for the primary region and the DR region.
#[derive(Clone, Debug)]
pub struct Clients {
    pub region: String,
    pub dr_region: Option<String>,
    pub rds: aws_sdk_rds::Client,
    /// RDS in the DR region (global database secondaries live there); the primary's when no
    /// DR region is set.
    pub rds_dr: aws_sdk_rds::Client,
    pub route53: aws_sdk_route53::Client,
    pub fis: aws_sdk_fis::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Clients {
    /// Clients from a loaded SDK config (one per region).
    pub fn from_configs(
        primary: &aws_config::SdkConfig,
        dr: Option<&aws_config::SdkConfig>,
    ) -> Clients {
        let region = primary.region().map(|r| r.to_string()).unwrap_or_default();
        let dr_region = dr.and_then(|d| d.region()).map(|r| r.to_string());
        Clients {
            region,
            dr_region,
            rds: aws_sdk_rds::Client::new(primary),
            rds_dr: aws_sdk_rds::Client::new(dr.unwrap_or(primary)),
            route53: aws_sdk_route53::Client::new(primary),
            fis: aws_sdk_fis::Client::new(primary),
            sts: aws_sdk_sts::Client::new(primary),
        }
    }

    /// Clients against an emulator (moto) at `endpoint` with static test credentials and SDK
    /// retries off, for tests.
    pub fn for_endpoint(endpoint: &str, region: &str, dr_region: Option<&str>) -> Clients {
        let cfg = |r: &str| {
            aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(r.to_string()))
                .endpoint_url(endpoint)
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(
                        aws_credential_types::Credentials::for_tests(),
                    ),
                )
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .http_client(https_client())
                .build()
        };
        let primary = cfg(region);
        let dr = dr_region.map(cfg);
        Clients::from_configs(&primary, dr.as_ref())
    }
}

/// The one HTTPS client every SDK client shares: rustls with ring only (no aws-lc), see
/// ARCHITECTURE.md.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
