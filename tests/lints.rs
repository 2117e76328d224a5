//! Expansions must be lint-clean: this file denies every rustc warning and,
//! under `cargo clippy --all-targets`, clippy's default lints, and uses the
//! attributes in every shape and with every option. If it compiles (and clippy
//! passes), users never see lint noise from our generated code.

#![deny(warnings, clippy::all)]

use std::fmt;

use workflow_otel::{child_workflow, step, workflow};

#[derive(Debug)]
struct Failure;

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failure")
    }
}

impl std::error::Error for Failure {}

#[workflow]
fn unit_return() {}

#[workflow(name = "named", args(a, b), fields(sum = a + b, text = %a, dbg = ?b), ret)]
fn with_every_option(a: u32, b: u32) -> u32 {
    a * b
}

#[child_workflow(err(Debug))]
fn fallible(flag: bool) -> Result<u8, Failure> {
    if flag {
        return Err(Failure);
    }
    Ok(1)
}

#[step(ret(Display))]
fn displayed() -> String {
    "shown".to_owned()
}

#[step]
async fn async_unit_with_question_mark() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let parsed: u32 = "7".parse()?;
    let _ = parsed;
    Ok(())
}

#[step]
fn returns_impl_trait() -> impl Iterator<Item = u8> {
    0..3
}

#[step]
async fn async_returns_impl_trait() -> impl fmt::Debug {
    5_u8
}

#[step]
async fn early_return(n: u8) -> Option<u8> {
    if n == 0 {
        return None;
    }
    Some(n)
}

#[derive(Debug)]
struct Service<T> {
    value: T,
}

impl<T: Clone + fmt::Debug + Send + Sync> Service<T> {
    #[step(args(self))]
    fn by_ref(&self) -> T {
        self.value.clone()
    }

    #[step]
    fn by_mut(&mut self, value: T) {
        self.value = value;
    }

    #[step]
    fn by_value(self) -> T {
        self.value
    }

    #[step]
    async fn async_by_ref<'a>(&'a self, label: &'a str) -> (&'a T, &'a str) {
        (&self.value, label)
    }
}

trait Repository {
    fn fetch(&self, id: u32) -> impl std::future::Future<Output = Result<String, Failure>> + Send;

    #[step]
    fn default_method(&self) -> u32 {
        7
    }
}

struct Memory;

impl Repository for Memory {
    #[step(args(id))]
    async fn fetch(&self, id: u32) -> Result<String, Failure> {
        Ok(id.to_string())
    }
}

#[step]
fn generic_where<I, T>(items: I) -> usize
where
    I: IntoIterator<Item = T>,
{
    items.into_iter().count()
}

#[step]
fn mutable_argument(mut total: u32) -> u32 {
    total += 1;
    total
}

#[step(retry(attempts = 2, backoff_ms = 0), kind = client, genai = tool, args(items))]
fn retried(items: Vec<u32>, limit: &u32, counter: &mut u32) -> Result<u32, Failure> {
    *counter += 1;
    if *counter < 2 {
        Err(Failure)
    } else {
        Ok(items.len() as u32 + limit)
    }
}

#[step(retry(attempts = 2, backoff_ms = 0))]
fn retried_generic<T>(value: T) -> Result<T, Failure>
where
    T: Clone + PartialEq,
{
    Ok(value)
}

struct Store;

impl Store {
    #[step(retry(attempts = 2, backoff_ms = 0))]
    async fn load(&self, id: u32) -> Result<u32, Failure> {
        Ok(id)
    }
}

#[step(retry)]
async fn retried_async(name: String, shared: &str) -> Result<usize, Failure> {
    Ok(name.len() + shared.len())
}

#[workflow(genai = agent, kind = server)]
fn agent() -> u32 {
    let mut counter = 0;
    retried(vec![1, 2], &1, &mut counter).unwrap_or_default()
}

#[test]
fn every_shape_runs() {
    assert_eq!(agent(), 3);
    assert_eq!(retried_generic(4_u8).unwrap(), 4);
    unit_return();
    assert_eq!(displayed(), "shown");
    assert_eq!(with_every_option(2, 3), 6);
    assert!(fallible(true).is_err());
    assert_eq!(returns_impl_trait().count(), 3);
    let mut service = Service { value: 1_u8 };
    service.by_mut(2);
    assert_eq!(service.by_ref(), 2);
    assert_eq!(Memory.default_method(), 7);
    assert_eq!(generic_where(vec![1, 2]), 2);
    assert_eq!(mutable_argument(1), 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        async_unit_with_question_mark().await.unwrap();
        assert_eq!(format!("{:?}", async_returns_impl_trait().await), "5");
        assert_eq!(early_return(0).await, None);
        assert_eq!(service.async_by_ref("x").await, (&2, "x"));
        assert_eq!(Memory.fetch(4).await.unwrap(), "4");
        assert_eq!(retried_async("ab".to_owned(), "c").await.unwrap(), 3);
        assert_eq!(Store.load(9).await.unwrap(), 9);
    });
    assert_eq!(service.by_value(), 2);
}
