//! Stable key hashing for sampled events (xxh3, identical across runs, processes and
//! platforms, unlike `std`'s `DefaultHasher`), and the keyed-sampling decision.

use xxhash_rust::xxh3::xxh3_64;

/// Something that can key a sampled event: a client id, a request id, a route.
///
/// Implemented for strings, integers (`u128`/`i128` included), IP and socket addresses and
/// byte slices; a top key of these shows in `/metrics` and the snapshot as it was passed
/// ([`SampleKey::write_label`]). A key type of your own needs only `key_hash`; its top keys
/// then show as their hash, unless it also writes a label.
pub trait SampleKey {
    /// A stable 64-bit hash of the key. Never 0 (0 means "no key" in a record).
    fn key_hash(&self) -> u64;

    /// Writes the key as a top key should read (a label value; at most
    /// [`KEY_LABEL_MAX`] bytes are kept, cut at a character boundary). Called only for a
    /// sampled event whose key the flusher wants named (a reported top key without a name
    /// yet), never on a call that is not sampled. The default writes nothing: the key shows
    /// as its hash.
    fn write_label(&self, out: &mut String) {
        let _ = out;
    }

    /// The key in two words, hashed only if the event is sampled (integers and strings);
    /// other keys are hashed at once.
    #[doc(hidden)]
    #[inline(always)]
    fn key_arg(&self) -> KeyArg<'_> {
        // Never 0 (which would read as "no key"), whatever the implementation returns.
        KeyArg::hashed(nonzero(self.key_hash()))
    }
}

/// Most bytes of a key's label ([`SampleKey::write_label`]) kept for export.
pub const KEY_LABEL_MAX: usize = 64;

/// Cuts `label` to at most [`KEY_LABEL_MAX`] bytes, at a character boundary.
pub(crate) fn truncate_label(label: &mut String) {
    if label.len() > KEY_LABEL_MAX {
        let mut end = KEY_LABEL_MAX;
        while !label.is_char_boundary(end) {
            end -= 1;
        }
        label.truncate(end);
    }
}

/// A key passed by value in two registers down to the sampled path, which hashes it only
/// when the event is sampled (and writes its label only when the flusher wants it named).
/// Not a stable API.
///
/// `len` says what `word` is: a string's or byte slice's address (its length, below
/// [`KeyArg::BYTES`]; a byte slice with that bit set), an integer ([`KeyArg::INT`],
/// [`KeyArg::SINT`]), a hash ([`KeyArg::HASH`]), or the address of a key of another type
/// whose describing function's address is `len` with the top bit ([`KeyArg::DYN`]) set.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct KeyArg<'a> {
    /// An integer key, a string's address, or a hash.
    word: u64,
    /// A string's length, or [`KeyArg::INT`] / [`KeyArg::HASH`] (no string is that long:
    /// lengths are at most `isize::MAX`).
    len: usize,
    str: core::marker::PhantomData<&'a str>,
}

/// Hashes the key at `key` (a `&K`) and, given a string, writes its label: a [`KeyArg`]'s
/// way to a key of any type.
type Describe = unsafe fn(key: *const (), label: Option<&mut String>) -> u64;

/// [`Describe`] for keys of type `K`.
///
/// # Safety
/// `key` is the address of a live `K`.
unsafe fn describe<K: SampleKey>(key: *const (), label: Option<&mut String>) -> u64 {
    // SAFETY: the caller's contract: `key` points at a live `K`.
    let key = unsafe { &*key.cast::<K>() };
    if let Some(out) = label {
        key.write_label(out);
    }
    nonzero(key.key_hash())
}

impl<'a> KeyArg<'a> {
    const INT: usize = usize::MAX;
    const HASH: usize = usize::MAX - 1;
    /// A signed integer (sign-extended into `word`): hashed as `INT`, labelled signed.
    const SINT: usize = usize::MAX - 2;
    /// The top bit: `len` is a [`Describe`] function's address.
    const DYN: usize = 1 << (usize::BITS - 1);
    /// The next bit: `word` and `len` without it are a byte slice.
    const BYTES: usize = 1 << (usize::BITS - 2);

    /// No key (a record's key hash 0).
    pub const NONE: KeyArg<'static> = KeyArg {
        word: 0,
        len: Self::HASH,
        str: core::marker::PhantomData,
    };

    /// Whether this is [`KeyArg::NONE`].
    #[inline(always)]
    pub fn is_none(self) -> bool {
        self.len == Self::HASH && self.word == 0
    }

    #[inline(always)]
    fn int(v: u64) -> Self {
        Self {
            word: v,
            len: Self::INT,
            str: core::marker::PhantomData,
        }
    }

    #[inline(always)]
    fn sint(v: i64) -> Self {
        Self {
            word: v as u64,
            len: Self::SINT,
            str: core::marker::PhantomData,
        }
    }

    /// A byte slice (hashed at once if it is too long to tag, which no real slice is).
    #[inline(always)]
    fn bytes(b: &'a [u8]) -> Self {
        if b.len() >= Self::BYTES {
            return Self::hashed(b.key_hash());
        }
        Self {
            word: b.as_ptr() as u64,
            len: b.len() | Self::BYTES,
            str: core::marker::PhantomData,
        }
    }

    /// A key of any other type: its address and its [`Describe`] function (hashed at once
    /// on a platform whose function addresses use the top bit).
    #[inline(always)]
    fn of<K: SampleKey>(key: &'a K) -> Self {
        let f = (describe::<K> as Describe as *const ()).expose_provenance();
        if f & Self::DYN != 0 {
            return Self::hashed(nonzero(key.key_hash()));
        }
        Self {
            word: core::ptr::from_ref(key) as usize as u64,
            len: f | Self::DYN,
            str: core::marker::PhantomData,
        }
    }

    #[inline(always)]
    fn hashed(h: u64) -> Self {
        Self {
            word: h,
            len: Self::HASH,
            str: core::marker::PhantomData,
        }
    }

    #[inline(always)]
    fn str(s: &'a str) -> Self {
        Self {
            word: s.as_ptr() as u64,
            len: s.len(),
            str: core::marker::PhantomData,
        }
    }

    /// The key's [`SampleKey::key_hash`]; 0 for [`KeyArg::NONE`]. A hash given as such (and
    /// no key) is read inline; integers and strings are hashed out of line.
    #[inline(always)]
    pub fn hash(self) -> u64 {
        if self.len == Self::HASH {
            self.word
        } else {
            self.hash_slow()
        }
    }

    #[inline(never)]
    fn hash_slow(self) -> u64 {
        match self.len {
            Self::INT | Self::SINT => int_hash(self.word),
            Self::HASH => self.word,
            len if len & Self::DYN != 0 => self.call(None),
            len if len & Self::BYTES != 0 => self.slice(len & !Self::BYTES).key_hash(),
            len => self.slice(len).key_hash(),
        }
    }

    /// The bytes of a string or byte-slice key.
    fn slice(self, len: usize) -> &'a [u8] {
        // SAFETY: built by `KeyArg::str` or `KeyArg::bytes` from a `&'a str` or `&'a [u8]`
        // of this address and length, which `'a` keeps alive.
        unsafe { core::slice::from_raw_parts(self.word as usize as *const u8, len) }
    }

    /// Calls a `DYN` key's [`Describe`] function.
    fn call(self, label: Option<&mut String>) -> u64 {
        let f = self.len & !Self::DYN;
        // SAFETY: `KeyArg::of` stored a `Describe` function's address here (its top bit,
        // which the address does not use, set), and the address of a `&'a K` of the type
        // that function reads, alive for `'a`.
        unsafe {
            let f =
                core::mem::transmute::<*const (), Describe>(core::ptr::with_exposed_provenance(f));
            f(self.word as usize as *const (), label)
        }
    }

    /// Writes the key's label (see [`SampleKey::write_label`]); nothing for a key known
    /// only by its hash.
    pub(crate) fn write_label(self, out: &mut String) {
        use core::fmt::Write as _;
        match self.len {
            Self::INT => {
                let _ = write!(out, "{}", self.word);
            }
            Self::SINT => {
                let _ = write!(out, "{}", self.word as i64);
            }
            Self::HASH => {}
            len if len & Self::DYN != 0 => {
                self.call(Some(out));
            }
            len if len & Self::BYTES != 0 => self.slice(len & !Self::BYTES).write_label(out),
            len => {
                // A `str` (see `slice`): valid UTF-8.
                out.push_str(&String::from_utf8_lossy(self.slice(len)));
            }
        }
    }
}

#[inline]
fn int_hash(v: u64) -> u64 {
    nonzero(xxh3_64(&v.to_le_bytes()))
}

/// `h`, or 1 for 0 (which reads as "no key" in a record): what every path records for a
/// key whose `key_hash` returns 0.
#[inline]
pub(crate) fn nonzero(h: u64) -> u64 {
    if h == 0 { 1 } else { h }
}

impl SampleKey for str {
    #[inline]
    fn key_hash(&self) -> u64 {
        nonzero(xxh3_64(self.as_bytes()))
    }

    fn write_label(&self, out: &mut String) {
        out.push_str(self);
    }

    #[inline(always)]
    fn key_arg(&self) -> KeyArg<'_> {
        KeyArg::str(self)
    }
}

impl SampleKey for String {
    #[inline]
    fn key_hash(&self) -> u64 {
        self.as_str().key_hash()
    }

    fn write_label(&self, out: &mut String) {
        out.push_str(self);
    }

    #[inline(always)]
    fn key_arg(&self) -> KeyArg<'_> {
        KeyArg::str(self)
    }
}

impl<T: SampleKey + ?Sized> SampleKey for &T {
    #[inline]
    fn key_hash(&self) -> u64 {
        (**self).key_hash()
    }

    fn write_label(&self, out: &mut String) {
        (**self).write_label(out);
    }

    #[inline(always)]
    fn key_arg(&self) -> KeyArg<'_> {
        (**self).key_arg()
    }
}

macro_rules! int_keys {
    ($arg:ident: $($t:ty),*) => {$(
        impl SampleKey for $t {
            #[inline]
            fn key_hash(&self) -> u64 {
                int_hash(*self as u64)
            }

            fn write_label(&self, out: &mut String) {
                use core::fmt::Write as _;
                let _ = write!(out, "{self}");
            }

            #[inline(always)]
            fn key_arg(&self) -> KeyArg<'_> {
                KeyArg::$arg((*self).try_into().unwrap_or_else(|_| unreachable!()))
            }
        }
    )*};
}
int_keys!(int: u8, u16, u32, u64, usize);
int_keys!(sint: i8, i16, i32, i64, isize);

/// Keys hashed from a few bytes and labelled as `Display` writes them: `u128` and `i128`
/// (their 16 little-endian bytes: a value that fits in 64 bits hashes differently from the
/// same `u64`, a key's type is part of it), and addresses (their octets, and a socket
/// address's port, little-endian; `10.0.0.7`, `[::1]:8080`).
macro_rules! display_keys {
    ($($t:ty => |$a:ident, $buf:ident| $bytes:expr),* $(,)?) => {$(
        impl SampleKey for $t {
            #[inline]
            fn key_hash(&self) -> u64 {
                let $a = self;
                let mut $buf = [0u8; 18];
                let n: usize = $bytes;
                nonzero(xxh3_64(&$buf[..n]))
            }

            fn write_label(&self, out: &mut String) {
                use core::fmt::Write as _;
                let _ = write!(out, "{self}");
            }

            #[inline(always)]
            fn key_arg(&self) -> KeyArg<'_> {
                KeyArg::of(self)
            }
        }
    )*};
}
display_keys!(
    u128 => |a, buf| put(&mut buf, &a.to_le_bytes()),
    i128 => |a, buf| put(&mut buf, &a.to_le_bytes()),
    std::net::Ipv4Addr => |a, buf| put(&mut buf, &a.octets()),
    std::net::Ipv6Addr => |a, buf| put(&mut buf, &a.octets()),
    std::net::IpAddr => |a, buf| match a {
        std::net::IpAddr::V4(v4) => put(&mut buf, &v4.octets()),
        std::net::IpAddr::V6(v6) => put(&mut buf, &v6.octets()),
    },
    std::net::SocketAddr => |a, buf| {
        let n = match a.ip() {
            std::net::IpAddr::V4(v4) => put(&mut buf, &v4.octets()),
            std::net::IpAddr::V6(v6) => put(&mut buf, &v6.octets()),
        };
        buf[n..n + 2].copy_from_slice(&a.port().to_le_bytes());
        n + 2
    },
);

/// Copies `bytes` to the front of `buf`; their length.
fn put(buf: &mut [u8; 18], bytes: &[u8]) -> usize {
    buf[..bytes.len()].copy_from_slice(bytes);
    bytes.len()
}

/// Byte slices: hashed like the string of the same bytes (so `b"client-7"` and
/// `"client-7"` are one key); labelled as text when they are UTF-8, else as `0x` and hex.
impl SampleKey for [u8] {
    #[inline]
    fn key_hash(&self) -> u64 {
        nonzero(xxh3_64(self))
    }

    fn write_label(&self, out: &mut String) {
        use core::fmt::Write as _;
        match core::str::from_utf8(self) {
            Ok(text) => out.push_str(text),
            Err(_) => {
                out.push_str("0x");
                // Hex of the first bytes only: the label is cut at `KEY_LABEL_MAX` anyway.
                for b in self.iter().take(KEY_LABEL_MAX / 2) {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
    }

    #[inline(always)]
    fn key_arg(&self) -> KeyArg<'_> {
        KeyArg::bytes(self)
    }
}

/// Owned and fixed-size byte keys: as the slice they hold.
macro_rules! byte_keys {
    ($([$($generics:tt)*] $t:ty),*) => {$(
        impl<$($generics)*> SampleKey for $t {
            #[inline]
            fn key_hash(&self) -> u64 {
                self.as_slice().key_hash()
            }

            fn write_label(&self, out: &mut String) {
                self.as_slice().write_label(out);
            }

            #[inline(always)]
            fn key_arg(&self) -> KeyArg<'_> {
                KeyArg::bytes(self)
            }
        }
    )*};
}
byte_keys!([] Vec<u8>, [const N: usize] [u8; N]);

/// Keyed (consistent) sampling: keep the event iff its key hash is below `2^(64-k)`, i.e.
/// has at least `k` leading zero bits. Every event of one key gets the same decision, and
/// a larger `k` keeps a subset of what a smaller one kept.
#[inline(always)]
pub fn keep_keyed(hash: u64, k: u8) -> bool {
    hash.leading_zeros() >= k as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_args_hash_as_their_keys() {
        /// A key type of a user's own: hashed at once.
        struct Custom;
        impl SampleKey for Custom {
            fn key_hash(&self) -> u64 {
                42
            }
        }
        let s = String::from("client-7");
        assert_eq!(s.key_arg().hash(), s.key_hash());
        assert_eq!("client-7".key_arg().hash(), "client-7".key_hash());
        assert_eq!((&"x").key_arg().hash(), "x".key_hash());
        assert_eq!("".key_arg().hash(), "".key_hash());
        assert_eq!(7u64.key_arg().hash(), 7u64.key_hash());
        assert_eq!((-1i32).key_arg().hash(), (-1i32).key_hash());
        assert_eq!(u64::MAX.key_arg().hash(), u64::MAX.key_hash());
        assert_eq!(Custom.key_arg().hash(), 42);
    }

    /// Every key kind through the macros' `KeyArg` hashes and labels as the key itself.
    #[test]
    fn key_args_label_and_hash_as_their_keys() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
        fn check<K: SampleKey + ?Sized>(key: &K, label: &str) {
            let arg = key.key_arg();
            assert_eq!(arg.hash(), key.key_hash(), "{label}");
            let (mut via_arg, mut direct) = (String::new(), String::new());
            arg.write_label(&mut via_arg);
            key.write_label(&mut direct);
            assert_eq!(via_arg, label);
            assert_eq!(direct, label);
        }
        check("client-7", "client-7");
        check(&String::from("é"), "é");
        check(&7u8, "7");
        check(&u64::MAX, "18446744073709551615");
        check(&-7i32, "-7");
        check(&i64::MIN, "-9223372036854775808");
        check(&u128::MAX, "340282366920938463463374607431768211455");
        check(&-1i128, "-1");
        check(&Ipv4Addr::new(10, 0, 0, 7), "10.0.0.7");
        check(&IpAddr::V6(Ipv6Addr::LOCALHOST), "::1");
        check(&SocketAddr::from(([127, 0, 0, 1], 80)), "127.0.0.1:80");
        check(&b"client-7"[..], "client-7");
        check(&vec![0xffu8, 0x01], "0xff01");
        check(&[0u8, 0x9f], "0x009f");
        // A byte slice is the key its string is; a signed integer the same as before.
        assert_eq!(b"client-7"[..].key_hash(), "client-7".key_hash());
        assert_eq!((-7i32).key_hash(), int_hash(-7i64 as u64));
        // Addresses: family and port are part of the key.
        assert_ne!(
            SocketAddr::from(([127, 0, 0, 1], 80)).key_hash(),
            SocketAddr::from(([127, 0, 0, 1], 81)).key_hash()
        );
        assert_ne!(7u128.key_hash(), 0);
    }

    #[test]
    fn hashes_are_stable_and_nonzero() {
        // Pinned values: a change of hash function would silently reshuffle every keyed
        // sampling decision, so it must show up here.
        assert_eq!("client-42".key_hash(), xxh3_64(b"client-42"));
        assert_eq!(42u64.key_hash(), xxh3_64(&42u64.to_le_bytes()));
        assert_eq!(42u32.key_hash(), 42u64.key_hash());
        assert_eq!(String::from("a").key_hash(), "a".key_hash());
        assert_ne!(0u64.key_hash(), 0);
    }

    #[test]
    fn keyed_decisions_nest() {
        for i in 0..10_000u64 {
            let h = i.key_hash();
            assert!(keep_keyed(h, 0));
            for k in 1..20 {
                if keep_keyed(h, k) {
                    assert!(keep_keyed(h, k - 1), "k={k} kept what k-1 dropped");
                }
            }
        }
    }

    /// Kept fraction over 200,000 distinct keys: within ±1 percentage point of p (the
    /// design's bound), and within 3 binomial standard errors `sqrt(p(1-p)/n)` (at most
    /// 0.11 points here), which is the tighter, distribution-derived check.
    #[test]
    fn kept_fraction_matches_p_over_many_keys() {
        let n = 200_000u64;
        for k in [1u8, 2, 3, 5, 7] {
            let p = 1.0 / (1u64 << k) as f64;
            let kept = (0..n).filter(|i| keep_keyed(i.key_hash(), k)).count() as f64;
            let frac = kept / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            // 3σ band: false-failure probability 0.27% per k for an ideal hash; the keys
            // and hash are fixed, so the outcome is deterministic.
            assert!(
                (frac - p).abs() <= 3.0 * se,
                "k={k}: kept {frac:.5}, p={p:.5}, 3σ={:.5}",
                3.0 * se
            );
            // The absolute ±1% band of the design (|frac - p| <= 0.01) holds a fortiori.
            assert!((frac - p).abs() <= 0.01);
        }
    }
}
