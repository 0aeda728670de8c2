//! [`TempDir`]: a fresh directory under the system temp dir, removed on `Drop`; where a
//! test server keeps its ports file, its log and its JetStream store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh, empty directory under [`std::env::temp_dir`], removed with its contents on
/// `Drop`: for the files a test writes (a configuration, credentials).
///
/// ```
/// use panini::testing::TempDir;
///
/// let dir = TempDir::new();
/// let conf = dir.path().join("server.conf");
/// std::fs::write(&conf, "max_payload: 1024\n").unwrap();
/// let path = dir.path().to_path_buf();
/// drop(dir);
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates the directory (`panini-test-<pid>-<n>-<nanos>`).
    ///
    /// # Panics
    ///
    /// If it cannot be created.
    #[allow(clippy::new_without_default)] // a new directory each call: not a default value
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "panini-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {path:?}: {e}"));
        TempDir { path }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
