//! The AWS backend against moto over HTTP.
mod support;
use firedrill::aws::{AwsProvider, AwsSettings};
use firedrill::provider::Provider;
use serde_json::json;
use support::*;

fn provider(m: &Moto, b: &Bridge, region: &str, dr: Option<&str>) -> AwsProvider {
    let mut s = AwsSettings::for_region(region);
    s.dr_region = dr.map(str::to_string);
    s.endpoint_url = Some(m.url.clone());
    AwsProvider::from_clients(s, clients(m, b, region, dr))
}

#[tokio::test(start_paused = true)]
async fn smoke() {
    let m = moto().await;
    let b = Bridge::new();
    let c = clients(&m, &b, "us-east-1", Some("us-west-2"));
    orders_estate(&c).await;
    let p = provider(&m, &b, "us-east-1", Some("us-west-2"));
    let v = p
        .observe("db.cluster", &json!({"cluster": "orders-db"}))
        .await
        .unwrap();
    println!("{v:#}");
    let v = p
        .observe("db.cluster", &json!({"cluster": "orders-db-dr"}))
        .await
        .unwrap();
    println!("{v:#}");
}
