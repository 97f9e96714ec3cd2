//! Integration tests of the queue against real SQLite and real PostgreSQL: every
//! scenario runs once per backend, each on a fresh database.

/// Expands to `sqlite::<scenario>` and `postgres::<scenario>` tests for each scenario
/// `async fn <scenario>(db: TestDb)` of the invoking module. The PostgreSQL half is
/// ignored (not passed) when `FRAMEHOUSE_TEST_SKIP_POSTGRES=1` outside CI.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::$scenario(crate::support::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
                async fn $scenario() {
                    super::$scenario(crate::support::postgres().await).await;
                }
            )*
        }
    };
}

// The crate root is tests/queue.rs, so its modules live in tests/queue/ by path; a plain
// tests/*.rs file would become a test binary of its own.
#[path = "queue/runtime.rs"]
mod runtime;
#[path = "queue/store.rs"]
mod store;
#[path = "queue/support.rs"]
mod support;
