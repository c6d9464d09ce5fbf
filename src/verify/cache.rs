//! The verified-token cache: a repeated token costs a keyed hash, one
//! lookup and a byte comparison, and counts only while the key that
//! verified it is still in its source's key set.
//!
//! In front of the shared cache, each thread keeps its last few hits
//! ([`RECENT_HITS`] entries of the shared caches): a token the thread saw
//! lately costs a byte comparison, without the shared cache's hashing,
//! lookup and bookkeeping. A recent hit is judged by exactly the same rules
//! as a hit in the shared cache.

use std::cell::RefCell;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Verified;

/// What one entry costs beyond the token and the user (the entry itself and
/// the cache's own bookkeeping), in bytes.
const ENTRY_OVERHEAD: usize = 256;

/// The verified-token cache: bounded in entries and in bytes, each entry
/// gone at its token's `exp`, and disregarded once the key that verified it
/// is no longer in its source's current key set.
///
/// Entries are found by a keyed hash of the token (foldhash with a random
/// seed per cache) and count only if the stored token equals the presented
/// one byte for byte: a collision, chosen or not, can only cost a second
/// verification, never accept a token.
pub(crate) struct VerifiedTokens {
    pub(super) entries: moka::sync::Cache<u64, Arc<Entry>, BuildHasherDefault<KeyedHash>>,
    hasher: foldhash::quality::RandomState,
    /// Tells this cache's entries from other caches' among each thread's
    /// recent hits; never reused within a process.
    id: u64,
}

/// How many recent hits each thread keeps (for all caches together).
pub(super) const RECENT_HITS: usize = 4;

thread_local! {
    static RECENT: RefCell<Recent> = const {
        RefCell::new(Recent {
            slots: [const { None }; RECENT_HITS],
            next: 0,
        })
    };
}

/// One thread's recent hits: entries of the shared caches, by cache id.
/// An entry the shared cache has dropped may stay here until replaced (at
/// most [`RECENT_HITS`] per thread), but it is judged again on every use,
/// like a hit in the shared cache, and dropped once refused.
struct Recent {
    slots: [Option<(u64, Arc<Entry>)>; RECENT_HITS],
    /// The slot the next entry replaces.
    next: usize,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("max_weight", &self.entries.policy().max_capacity())
            .finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    /// A cache of at most `max_entries` tokens and about `max_bytes` bytes.
    pub(crate) fn new(max_entries: u64, max_bytes: u64) -> Self {
        // Each entry weighs its bytes, and at least a share of the budget
        // such that no more than `max_entries` fit.
        let floor = max_bytes
            .div_ceil(max_entries.max(1))
            .min(u64::from(u32::MAX)) as u32;
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |_: &u64, entry: &Arc<Entry>| entry.weight.max(floor))
            .expire_after(UntilExpiry)
            .build_with_hasher(BuildHasherDefault::default());
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            entries,
            hasher: foldhash::quality::RandomState::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The keyed hash `token` is remembered under.
    pub(super) fn hash(&self, token: &[u8]) -> u64 {
        self.hasher.hash_one(token)
    }

    /// `judge`'s verdict on this thread's recent hit for `token`, if there
    /// is one. An entry not judged `Some(Ok(_))` (its key is gone, or it is
    /// refused: expired, say) leaves the recent hits.
    pub(super) fn judge_recent<T, E>(
        &self,
        token: &[u8],
        judge: impl FnOnce(&Entry) -> Option<Result<T, E>>,
    ) -> Option<Option<Result<T, E>>> {
        RECENT.with_borrow_mut(|recent| {
            let slot = recent.slots.iter_mut().find(|slot| {
                slot.as_ref()
                    .is_some_and(|(id, entry)| *id == self.id && entry.token.as_bytes() == token)
            })?;
            let (_, entry) = slot.as_ref()?;
            let verdict = judge(entry);
            if !matches!(verdict, Some(Ok(_))) {
                *slot = None;
            }
            Some(verdict)
        })
    }

    /// Keeps `entry`, a hit of this cache, among this thread's recent hits.
    pub(super) fn keep_recent(&self, entry: Arc<Entry>) {
        RECENT.with_borrow_mut(|recent| {
            let next = recent.next;
            recent.slots[next] = Some((self.id, entry));
            recent.next = (next + 1) % RECENT_HITS;
        });
    }

    /// Remembers the token `verified` was verified from, by the issuer at
    /// index `issuer`, until it expires; a token that expires now is not
    /// kept. The entry shares the token's bytes with the user.
    pub(super) fn remember(&self, issuer: usize, verified: Verified) {
        if verified.lifetime.is_zero() {
            return;
        }
        // The user's weight counts the token it shares with the entry.
        let weight = (ENTRY_OVERHEAD + verified.user.weight()).min(u32::MAX as usize);
        let token = verified.user.signed_token().clone();
        self.entries.insert(
            self.hash(token.as_bytes()),
            Arc::new(Entry {
                token,
                issuer,
                verified,
                weight: weight as u32,
            }),
        );
    }

    /// How many tokens are remembered now.
    pub(crate) fn count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

/// The cache's keys are already keyed hashes of the tokens: the cache uses
/// them as they are instead of hashing them again.
#[derive(Default)]
pub(super) struct KeyedHash(u64);

impl Hasher for KeyedHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys reach here (`write_u64`); any other input is
        // still spread over the hash.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

struct UntilExpiry;

impl moka::Expiry<u64, Arc<Entry>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &u64,
        entry: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.verified.lifetime)
    }
}

/// One remembered token.
pub(super) struct Entry {
    /// The token, the same bytes its user holds.
    pub(super) token: Arc<str>,
    /// The index of the issuer that verified it.
    pub(super) issuer: usize,
    pub(super) verified: Verified,
    /// About how many bytes the entry holds.
    weight: u32,
}
