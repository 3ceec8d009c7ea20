//! The integration tests: one binary (one link of the AWS SDK and kube), one module per area.
//! `support` holds what they share: moto, the served estate, drill builders.

mod aws_fis;
mod aws_journal;
mod aws_moto;
mod aws_samples;
mod canary;
mod cli;
mod diagnostics;
mod executor;
mod fis_corpus;
mod fuzz;
mod gameday;
mod kube_api;
mod kube_backend;
mod kube_transport;
mod kubectl;
mod lab_drill;
mod lab_http;
mod layout;
mod mermaid;
mod notify;
mod postgres_lab;
mod prometheus_lab;
mod reports;
mod sim_fis;
mod sim_k8s;
mod sim_outcomes;
mod support;
mod terminal;
mod timetable;
