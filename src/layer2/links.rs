//! Link and address changes of this network namespace, as a wake-up: a netlink socket
//! subscribed to them (`sys::link_events_socket`) bumps a counter on every message, so the
//! speaker rescans sysfs within a scheduling delay of a change instead of at its next periodic
//! pass. Nothing is parsed: the message only says "look again", and sysfs stays the one source
//! of what the interfaces are.

use std::io;
use std::mem::MaybeUninit;

use tokio::sync::watch;

use super::sys;

/// Starts the watch (within a tokio runtime). The receiver changes after every link or address
/// change; the task ends when every receiver is gone.
pub fn watch_links() -> io::Result<watch::Receiver<u64>> {
    let socket = sys::register(sys::link_events_socket()?)?;
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 16 * 1024];
        loop {
            let Ok(mut ready) = socket.readable().await else {
                return;
            };
            match ready.try_io(|s| s.get_ref().recv(&mut buf)) {
                Ok(Ok(_)) => {}
                // ENOBUFS: the kernel dropped messages, so something changed too.
                Ok(Err(e)) if e.raw_os_error() == Some(105) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "link change watch failed; interfaces are rescanned every second");
                    return;
                }
                Err(_would_block) => continue,
            }
            tx.send_modify(|n| *n = n.wrapping_add(1));
            if tx.is_closed() {
                return;
            }
        }
    });
    Ok(rx)
}
