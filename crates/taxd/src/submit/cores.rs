//! Work on every core for the parts of a batch where each item stands alone (its receipt's
//! signature). The calling thread takes the first share and a thread is started for each
//! other one: Linux places a new thread on an idle core, where a pooled worker woken from
//! sleep is put on its waker's core and shares it for the whole of a few milliseconds'
//! work (measured with rayon's pool: a batch's signing took as long on two threads as on
//! one in about half the batches of a drain, the other core idle).

use std::sync::Mutex;

/// `f` over `items` in order, split across the machine's cores; `Err` only when a thread
/// could not be joined (it panicked), never seen.
pub(super) fn map_on_every_core<T, R, F>(items: Vec<T>, f: F) -> Result<Vec<R>, String>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Below this many items a thread costs more than it saves.
    const MIN_SHARE: usize = 16;
    let threads = cores.min(items.len() / MIN_SHARE).max(1);
    if threads == 1 {
        return Ok(items.into_iter().map(f).collect());
    }
    let share = items.len().div_ceil(threads);
    let mut slots: Vec<Mutex<Option<Vec<T>>>> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let next: Vec<T> = items.by_ref().take(share).collect();
        if next.is_empty() {
            break;
        }
        slots.push(Mutex::new(Some(next)));
    }
    let Some((first, rest)) = slots.split_first() else {
        return Ok(Vec::new());
    };
    let f = &f;
    std::thread::scope(|scope| {
        let threads: Vec<_> = rest
            .iter()
            .map(|slot| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || {
                        take(slot).into_iter().map(f).collect::<Vec<R>>()
                    })
                    .ok()
            })
            .collect();
        let mut out: Vec<R> = take(first).into_iter().map(f).collect();
        for (slot, thread) in rest.iter().zip(threads) {
            out.extend(match thread {
                Some(thread) => thread
                    .join()
                    .map_err(|_| "a thread signing receipts panicked".to_string())?,
                // The system would not start a thread: that share is done here.
                None => take(slot).into_iter().map(f).collect(),
            });
        }
        Ok(out)
    })
}

/// The items of a share, taken once: by its thread, or here if none could be started.
fn take<T>(slot: &Mutex<Option<Vec<T>>>) -> Vec<T> {
    match slot.lock() {
        Ok(mut items) => items.take().unwrap_or_default(),
        Err(poisoned) => poisoned.into_inner().take().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::map_on_every_core;

    #[test]
    fn every_item_is_mapped_once_in_order() {
        for n in [0, 1, 15, 16, 17, 33, 200, 501] {
            let items: Vec<usize> = (0..n).collect();
            let out = map_on_every_core(items, |i| i * 2).unwrap();
            assert_eq!(out, (0..n).map(|i| i * 2).collect::<Vec<_>>(), "{n}");
        }
    }
}
