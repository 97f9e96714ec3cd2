//! A time limit for libvips pipelines.
//!
//! libvips checks an image's `kill` flag every time a region of it is prepared
//! (`vips_region_prepare`) and fails that request; the failure stops whatever sink was
//! evaluating the pipeline (a saver, `copy_memory`, smartcrop's statistics), which then
//! returns an error. The flag is cleared when picked up, so once the deadline has passed a
//! watchdog thread keeps setting it on every watched image until the transform ends.
//! Watching the source image is enough for anything computed from it; images that are
//! materialised in memory or built from nothing (a text watermark) are watched too.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libvips::bindings as ffi;

use super::{Image, Result, VipsError, TRUE};

/// How often the flag is set again after the deadline (it is cleared on each pickup).
const REPEAT: Duration = Duration::from_millis(5);

/// Arms on creation; disarms (and joins its thread) on drop.
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Our references to the watched images, released only after the thread has stopped.
    watched: RefCell<Vec<Image>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    fired: AtomicBool,
}

struct State {
    done: bool,
    images: Vec<ImagePtr>,
}

/// A watched image as the watchdog thread sees it.
struct ImagePtr(*mut ffi::VipsImage);

// SAFETY: the pointer is only used for `vips_image_set_kill`, a plain flag store that
// libvips expects from other threads (progress handlers), and the owning `Watchdog` keeps
// a reference to the image until after the thread has been joined.
unsafe impl Send for ImagePtr {}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave `State` inconsistent, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Watchdog {
    /// Starts a watchdog that fires `timeout` from now.
    pub(crate) fn start(timeout: Duration) -> Result<Watchdog> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                done: false,
                images: Vec::new(),
            }),
            wake: Condvar::new(),
            fired: AtomicBool::new(false),
        });
        let deadline = Instant::now().checked_add(timeout);
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vips-watchdog".into())
            .spawn(move || run(&theirs, deadline))
            .map_err(|e| VipsError(format!("starting the transform watchdog: {e}")))?;
        Ok(Watchdog {
            shared,
            thread: Some(thread),
            watched: RefCell::new(Vec::new()),
        })
    }

    /// Makes `image` (and so every pipeline reading from it) stop once the time is up.
    pub(crate) fn watch(&self, image: &Image) {
        self.shared.lock().images.push(ImagePtr(image.ptr()));
        self.watched.borrow_mut().push(image.share());
    }

    /// Whether the deadline has passed.
    pub(crate) fn fired(&self) -> bool {
        self.shared.fired.load(Ordering::SeqCst)
    }
}

fn run(shared: &Shared, deadline: Option<Instant>) {
    let mut state = shared.lock();
    loop {
        if state.done {
            return;
        }
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if deadline.is_some() && left.is_zero() {
            break;
        }
        state = shared
            .wake
            .wait_timeout(state, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    shared.fired.store(true, Ordering::SeqCst);
    while !state.done {
        for image in &state.images {
            // SAFETY: the owner holds a reference to every listed image until after this
            // thread is joined (see `Drop`).
            unsafe { ffi::vips_image_set_kill(image.0, TRUE) };
        }
        state = shared
            .wake
            .wait_timeout(state, REPEAT)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.lock().done = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread cannot panic (no unwraps, no user code), so the result is Ok.
            let _ = thread.join();
        }
        // `watched` is dropped after this, with the thread gone: references released last.
    }
}
