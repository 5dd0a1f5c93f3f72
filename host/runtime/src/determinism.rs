//! What a step sees of time, randomness and file metadata.
//!
//! A step's outputs are cached by the hash of its component, params and
//! inputs, which is sound only if nothing else reaches it. WASI hands a guest
//! three other sources by default: the host's clocks, the OS's randomness,
//! and the metadata of the files in its sandbox (timestamps, link counts,
//! inode numbers, the order a directory lists in). A [`Determinism::Virtual`]
//! step gets none of them:
//!
//! - **Clocks.** Virtual time starts at 0 on the monotonic clock and at
//!   [`VIRTUAL_EPOCH_SECONDS`] (2000-01-01T00:00:00Z) on the wall clock, and
//!   every reading of either clock advances it by [`VIRTUAL_TICK`]. Sleeping
//!   (`subscribe-duration`, `subscribe-instant`) is ready at once and moves
//!   virtual time to the end of the sleep: a step that trains "for 10
//!   seconds" does the same number of iterations everywhere, and one that
//!   sleeps forever is stopped by its timeout like one that computes forever.
//! - **Randomness.** `wasi:random/random`, `wasi:random/insecure` and
//!   `wasi:random/insecure-seed` are blake3 output streams keyed from a seed
//!   (the step's cache key), one per interface.
//! - **Files.** `stat` reports every timestamp as the virtual epoch and a
//!   link count of 1; `metadata-hash` numbers files in the order the step
//!   first asks about them; directories list in byte order of their names.
//!
//! Directory listings are sorted for every step; the rest is only changed
//! for virtual steps. A [`Determinism::Real`] step (`nondeterministic = true`
//! in weft.toml) sees the host's clocks and randomness, and is never served
//! from the cache.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime::StoreContextMut;
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self as fs, DescriptorStat, DirectoryEntry, HostDescriptor, MetadataHashValue, PathFlags,
};
use wasmtime_wasi::p2::{DynPollable, FsResult, Pollable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder, WasiView};

/// Wall-clock time at virtual instant 0: 2000-01-01T00:00:00Z.
pub const VIRTUAL_EPOCH_SECONDS: u64 = 946_684_800;
/// How far virtual time advances at each reading of a clock.
pub const VIRTUAL_TICK: Duration = Duration::from_millis(1);

/// A description of everything [`Determinism::Virtual`] changes. It is part
/// of every cache key: a change here must make earlier results misses.
pub const VIRTUAL_SANDBOX: &str = "weft-virtual-sandbox-v1: monotonic=0+1ms/reading, \
    wall=946684800s+monotonic, sleep=instant+advance, random=blake3-xof(derive_key(interface, seed)), \
    stat.times=epoch, stat.link-count=1, metadata-hash=first-use order, readdir=sorted by name";

/// How a step run sees time and randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Determinism {
    /// Virtual clocks and randomness derived from `seed` (see the module
    /// docs): the same component, params and inputs write the same bytes.
    Virtual {
        /// 32 bytes every random stream of the step run is derived from.
        seed: [u8; 32],
    },
    /// The host's real clocks and the OS's randomness.
    Real,
}

impl Determinism {
    /// Virtual time and randomness seeded from a hex cache key (or any
    /// string: it is hashed).
    pub fn seeded_from(key: &str) -> Self {
        Determinism::Virtual {
            seed: blake3::derive_key("weft step seed v1", key.as_bytes()),
        }
    }

    /// Configures `wasi` and returns the virtual state the filesystem and
    /// clock overrides consult (`None` for real time).
    pub(crate) fn configure(&self, wasi: &mut WasiCtxBuilder) -> Option<Virtual> {
        let Determinism::Virtual { seed } = self else {
            return None;
        };
        let clock = VirtualClock::default();
        let insecure_seed = stream(seed, "wasi:random/insecure-seed").next_u128();
        wasi.monotonic_clock(clock.clone())
            .wall_clock(VirtualWallClock(clock.clone()))
            .secure_random(stream(seed, "wasi:random/random"))
            .insecure_random(stream(seed, "wasi:random/insecure"))
            .insecure_random_seed(insecure_seed);
        Some(Virtual {
            clock,
            metadata_numbers: HashMap::new(),
        })
    }
}

/// Per-store state of a virtual step.
pub(crate) struct Virtual {
    clock: VirtualClock,
    /// Real metadata hash -> the number the guest sees.
    metadata_numbers: HashMap<(u64, u64), u64>,
}

impl Virtual {
    fn stat(&mut self, mut stat: DescriptorStat) -> DescriptorStat {
        let epoch = Some(fs::Datetime {
            seconds: VIRTUAL_EPOCH_SECONDS,
            nanoseconds: 0,
        });
        stat.link_count = 1;
        stat.data_access_timestamp = epoch;
        stat.data_modification_timestamp = epoch;
        stat.status_change_timestamp = epoch;
        stat
    }

    fn metadata_hash(&mut self, real: MetadataHashValue) -> MetadataHashValue {
        let next = self.metadata_numbers.len() as u64 + 1;
        let number = *self.metadata_numbers.entry((real.upper, real.lower)).or_insert(next);
        MetadataHashValue {
            lower: number,
            upper: 0,
        }
    }
}

/// Store state that has a WASI context and maybe a virtual sandbox.
pub(crate) trait VirtualView: WasiView + 'static {
    fn virtual_state(&mut self) -> Option<&mut Virtual>;
}

/// Virtual monotonic time in nanoseconds, shared by both clocks of a store.
#[derive(Debug, Clone, Default)]
pub(crate) struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    /// Advances by one tick and returns the new time.
    fn read(&self) -> u64 {
        let tick = VIRTUAL_TICK.as_nanos() as u64;
        self.0.fetch_add(tick, Ordering::Relaxed).saturating_add(tick)
    }
    fn peek(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn advance_to(&self, when: u64) {
        self.0.fetch_max(when, Ordering::Relaxed);
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        VIRTUAL_TICK.as_nanos() as u64
    }
    fn now(&self) -> u64 {
        self.read()
    }
}

struct VirtualWallClock(VirtualClock);

impl HostWallClock for VirtualWallClock {
    fn resolution(&self) -> Duration {
        VIRTUAL_TICK
    }
    fn now(&self) -> Duration {
        Duration::from_secs(VIRTUAL_EPOCH_SECONDS) + Duration::from_nanos(self.0.read())
    }
}

/// A random stream: blake3's extendable output, keyed per interface.
struct Stream(blake3::OutputReader);

fn stream(seed: &[u8; 32], interface: &str) -> Stream {
    let key = blake3::derive_key(&format!("weft {interface} v1"), seed);
    Stream(blake3::Hasher::new_keyed(&key).finalize_xof())
}

impl Stream {
    fn next_u128(&mut self) -> u128 {
        let mut bytes = [0u8; 16];
        self.0.fill(&mut bytes);
        u128::from_le_bytes(bytes)
    }
}

impl rand_core::TryRng for Stream {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.0.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

/// A sleep in virtual time: ready at once, it moves the clock to its end.
struct VirtualSleep {
    clock: VirtualClock,
    until: u64,
}

#[wasmtime_wasi::async_trait]
impl Pollable for VirtualSleep {
    async fn ready(&mut self) {
        self.clock.advance_to(self.until);
    }
}

/// A directory listing, sorted by name, as the guest reads it.
pub(crate) struct SortedEntries(VecDeque<FsResult<DirectoryEntry>>);

const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

fn lower<T>(result: FsResult<T>) -> wasmtime::Result<Result<T, fs::ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => Ok(Err(e.downcast()?)),
    }
}

/// Replaces the WASI functions that would let a guest see host time,
/// randomness or file metadata (see the module docs). Call after
/// `wasmtime_wasi::p2::add_to_linker_async`.
pub(crate) fn add_overrides<T: VirtualView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.resource(
        "directory-entry-stream",
        ResourceType::host::<SortedEntries>(),
        |mut store: StoreContextMut<'_, T>, rep| {
            store
                .data_mut()
                .ctx()
                .table
                .delete(Resource::<SortedEntries>::new_own(rep))?;
            Ok(())
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.read-directory",
        |mut store: StoreContextMut<'_, T>, (fd,): (Resource<fs::Descriptor>,)| {
            Box::new(async move {
                let mut view = store.data_mut().filesystem();
                let listing = match HostDescriptor::read_directory(&mut view, fd).await {
                    Ok(listing) => listing,
                    Err(e) => return Ok((lower(Err(e))?,)),
                };
                let listing = view.table.delete(listing)?;
                let mut entries = Vec::new();
                let mut error = None;
                for entry in listing {
                    match entry {
                        Ok(entry) => entries.push(entry),
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                let mut sorted: VecDeque<FsResult<DirectoryEntry>> = entries.into_iter().map(Ok).collect();
                sorted.extend(error.map(Err));
                let stream = view.table.push(SortedEntries(sorted))?;
                Ok((Ok(stream),))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]directory-entry-stream.read-directory-entry",
        |mut store: StoreContextMut<'_, T>, (stream,): (Resource<SortedEntries>,)| {
            Box::new(async move {
                let entries = store.data_mut().ctx().table.get_mut(&stream)?;
                Ok((lower(entries.0.pop_front().transpose())?,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.stat",
        |mut store: StoreContextMut<'_, T>, (fd,): (Resource<fs::Descriptor>,)| {
            Box::new(async move {
                let stat = HostDescriptor::stat(&mut store.data_mut().filesystem(), fd).await;
                virtualized(store.data_mut(), stat, Virtual::stat)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.stat-at",
        |mut store: StoreContextMut<'_, T>, (fd, flags, path): (Resource<fs::Descriptor>, PathFlags, String)| {
            Box::new(async move {
                let stat = HostDescriptor::stat_at(&mut store.data_mut().filesystem(), fd, flags, path).await;
                virtualized(store.data_mut(), stat, Virtual::stat)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.metadata-hash",
        |mut store: StoreContextMut<'_, T>, (fd,): (Resource<fs::Descriptor>,)| {
            Box::new(async move {
                let hash = HostDescriptor::metadata_hash(&mut store.data_mut().filesystem(), fd).await;
                virtualized(store.data_mut(), hash, Virtual::metadata_hash)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.metadata-hash-at",
        |mut store: StoreContextMut<'_, T>, (fd, flags, path): (Resource<fs::Descriptor>, PathFlags, String)| {
            Box::new(async move {
                let hash = HostDescriptor::metadata_hash_at(&mut store.data_mut().filesystem(), fd, flags, path).await;
                virtualized(store.data_mut(), hash, Virtual::metadata_hash)
            })
        },
    )?;

    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, T>, (duration,): (u64,)| {
            let state = store.data_mut();
            let until = match state.virtual_state() {
                Some(v) => v.clock.peek().saturating_add(duration),
                None => {
                    return Ok((monotonic_clock::Host::subscribe_duration(
                        &mut state.clocks(),
                        duration,
                    )?,));
                }
            };
            Ok((virtual_sleep(state, until)?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, T>, (when,): (u64,)| {
            let state = store.data_mut();
            if state.virtual_state().is_none() {
                return Ok((monotonic_clock::Host::subscribe_instant(&mut state.clocks(), when)?,));
            }
            Ok((virtual_sleep(state, when)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// What a filesystem call answers a virtual step (`fix` applied) or a
/// real one (as it is), lowered for the guest.
fn virtualized<T: VirtualView, R>(
    state: &mut T,
    result: FsResult<R>,
    fix: fn(&mut Virtual, R) -> R,
) -> wasmtime::Result<(Result<R, fs::ErrorCode>,)> {
    let virtual_state = state.virtual_state();
    Ok((lower(result.map(|r| match virtual_state {
        Some(v) => fix(v, r),
        None => r,
    }))?,))
}

fn virtual_sleep<T: VirtualView>(state: &mut T, until: u64) -> wasmtime::Result<Resource<DynPollable>> {
    let clock = match state.virtual_state() {
        Some(v) => v.clock.clone(),
        None => return Err(wasmtime::format_err!("a virtual sleep in a real-time sandbox")),
    };
    let table = state.ctx().table;
    let sleep = table.push(VirtualSleep { clock, until })?;
    wasmtime_wasi::p2::subscribe(table, sleep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::TryRng;

    #[test]
    fn streams_depend_on_the_seed_and_the_interface() {
        let bytes = |seed: [u8; 32], interface: &str| {
            let mut out = [0u8; 32];
            stream(&seed, interface).try_fill_bytes(&mut out).unwrap();
            out
        };
        let a = bytes([1; 32], "wasi:random/random");
        assert_eq!(a, bytes([1; 32], "wasi:random/random"));
        assert_ne!(a, bytes([2; 32], "wasi:random/random"));
        assert_ne!(a, bytes([1; 32], "wasi:random/insecure"));
    }

    #[test]
    fn virtual_time_advances_per_reading_and_by_sleeps() {
        let clock = VirtualClock::default();
        let wall = VirtualWallClock(clock.clone());
        assert_eq!(clock.now(), 1_000_000);
        assert_eq!(
            wall.now(),
            Duration::from_secs(VIRTUAL_EPOCH_SECONDS) + Duration::from_millis(2)
        );
        clock.advance_to(5_000_000_000);
        assert_eq!(clock.now(), 5_001_000_000);
        clock.advance_to(1);
        assert_eq!(clock.peek(), 5_001_000_000, "time never goes back");
    }
}
