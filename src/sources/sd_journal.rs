//! libsystemd's sd-journal, loaded at run time (dlopen) when the journal is read: the binary
//! has no link to libsystemd and starts on hosts without systemd.
//!
//! Only what the journal source needs: open the local journal, select entries by field,
//! seek by cursor or time, step through entries, read their fields, wait for more.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};

/// The library's soname (libsystemd0 on Debian, systemd-libs on Fedora).
const LIBRARY: &CStr = c"libsystemd.so.0";
/// `SD_JOURNAL_LOCAL_ONLY`: entries of this machine, as journalctl shows without --merge.
const LOCAL_ONLY: c_int = 1;

#[repr(C)]
struct SdJournal {
    _opaque: [u8; 0],
}

type OpenFn = unsafe extern "C" fn(*mut *mut SdJournal, c_int) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut SdJournal);
type JournalFn = unsafe extern "C" fn(*mut SdJournal) -> c_int;
type MatchFn = unsafe extern "C" fn(*mut SdJournal, *const c_void, usize) -> c_int;
type CursorFn = unsafe extern "C" fn(*mut SdJournal, *const c_char) -> c_int;
type U64Fn = unsafe extern "C" fn(*mut SdJournal, u64) -> c_int;
type GetCursorFn = unsafe extern "C" fn(*mut SdJournal, *mut *mut c_char) -> c_int;
type GetU64Fn = unsafe extern "C" fn(*mut SdJournal, *mut u64) -> c_int;
type GetDataFn =
    unsafe extern "C" fn(*mut SdJournal, *const c_char, *mut *const c_void, *mut usize) -> c_int;
type ThresholdFn = unsafe extern "C" fn(*mut SdJournal, usize) -> c_int;

/// The functions used, resolved once.
struct Lib {
    open: OpenFn,
    close: CloseFn,
    add_match: MatchFn,
    add_disjunction: JournalFn,
    seek_cursor: CursorFn,
    test_cursor: CursorFn,
    seek_realtime_usec: U64Fn,
    next: JournalFn,
    get_cursor: GetCursorFn,
    get_realtime_usec: GetU64Fn,
    get_data: GetDataFn,
    wait: U64Fn,
    set_data_threshold: ThresholdFn,
}

fn lib() -> Result<&'static Lib> {
    static LIB: OnceLock<std::result::Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(load)
        .as_ref()
        .map_err(|why| Error::invalid(why.clone()))
}

fn dlerror() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call;
    // it is copied at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

fn load() -> std::result::Result<Lib, String> {
    // SAFETY: loading the system's libsystemd by its soname; it is never unloaded, so the
    // function pointers taken from it stay valid for the life of the process.
    let handle = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "--journal needs libsystemd ({}): {}",
            LIBRARY.to_string_lossy(),
            dlerror()
        ));
    }
    macro_rules! sym {
        ($name:literal, $ty:ty) => {{
            // SAFETY: the symbol is looked up by its C name and has this C signature in every
            // libsystemd since 209 (sd-journal(3)).
            let p = unsafe { libc::dlsym(handle, concat!($name, "\0").as_ptr().cast()) };
            if p.is_null() {
                return Err(format!(
                    "{} has no {} (too old a systemd?)",
                    LIBRARY.to_string_lossy(),
                    $name
                ));
            }
            // SAFETY: as above: a function of exactly this type.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
        }};
    }
    Ok(Lib {
        open: sym!("sd_journal_open", OpenFn),
        close: sym!("sd_journal_close", CloseFn),
        add_match: sym!("sd_journal_add_match", MatchFn),
        add_disjunction: sym!("sd_journal_add_disjunction", JournalFn),
        seek_cursor: sym!("sd_journal_seek_cursor", CursorFn),
        test_cursor: sym!("sd_journal_test_cursor", CursorFn),
        seek_realtime_usec: sym!("sd_journal_seek_realtime_usec", U64Fn),
        next: sym!("sd_journal_next", JournalFn),
        get_cursor: sym!("sd_journal_get_cursor", GetCursorFn),
        get_realtime_usec: sym!("sd_journal_get_realtime_usec", GetU64Fn),
        get_data: sym!("sd_journal_get_data", GetDataFn),
        wait: sym!("sd_journal_wait", U64Fn),
        set_data_threshold: sym!("sd_journal_set_data_threshold", ThresholdFn),
    })
}

/// sd-journal's negative errno as an error naming the call.
fn check(call: &str, r: c_int) -> Result<c_int> {
    if r < 0 {
        Err(Error::net(
            format!("cannot read the journal ({call})"),
            std::io::Error::from_raw_os_error(-r),
        ))
    } else {
        Ok(r)
    }
}

/// An open journal, used by the thread that opened it (sd-journal is not thread-safe, so
/// this is neither `Send` nor `Sync`).
pub struct Journal {
    lib: &'static Lib,
    j: *mut SdJournal,
}

impl Journal {
    /// The local machine's journal: every file the caller may read, system and users'.
    pub fn open_local() -> Result<Journal> {
        let lib = lib()?;
        let mut j = std::ptr::null_mut();
        // SAFETY: `j` is a valid out-pointer; on success it holds an open journal.
        check("sd_journal_open", unsafe { (lib.open)(&mut j, LOCAL_ONLY) })?;
        let journal = Journal { lib, j };
        // Fields come whole, never cut at sd-journal's default 64 KiB: a cut line could read
        // differently. Their size is checked by the caller.
        // SAFETY: `j` is open.
        check("sd_journal_set_data_threshold", unsafe {
            (journal.lib.set_data_threshold)(journal.j, 0)
        })?;
        Ok(journal)
    }

    /// `FIELD=value`: only entries with it (the same field given twice: either value).
    pub fn add_match(&mut self, m: &str) -> Result<()> {
        // SAFETY: the bytes are valid for the call; sd-journal copies them.
        check("sd_journal_add_match", unsafe {
            (self.lib.add_match)(self.j, m.as_ptr().cast(), m.len())
        })
        .map(drop)
    }

    /// The matches added so far, or the ones added next.
    pub fn add_disjunction(&mut self) -> Result<()> {
        // SAFETY: `j` is open.
        check("sd_journal_add_disjunction", unsafe {
            (self.lib.add_disjunction)(self.j)
        })
        .map(drop)
    }

    fn cursor_arg(c: &str) -> Result<CString> {
        CString::new(c).map_err(|_| Error::invalid("a journal cursor with a NUL byte"))
    }

    /// Go to the entry at `cursor`, or the nearest one if it is gone.
    pub fn seek_cursor(&mut self, cursor: &str) -> Result<()> {
        let c = Self::cursor_arg(cursor)?;
        // SAFETY: `c` is NUL-terminated and outlives the call.
        check("sd_journal_seek_cursor", unsafe {
            (self.lib.seek_cursor)(self.j, c.as_ptr())
        })
        .map(drop)
    }

    /// Is the current entry the one at `cursor`?
    pub fn test_cursor(&mut self, cursor: &str) -> Result<bool> {
        let c = Self::cursor_arg(cursor)?;
        // SAFETY: as in seek_cursor.
        check("sd_journal_test_cursor", unsafe {
            (self.lib.test_cursor)(self.j, c.as_ptr())
        })
        .map(|r| r > 0)
    }

    /// Go to just before the first entry received at or after `us` (µs since the epoch).
    pub fn seek_realtime_us(&mut self, us: u64) -> Result<()> {
        // SAFETY: `j` is open.
        check("sd_journal_seek_realtime_usec", unsafe {
            (self.lib.seek_realtime_usec)(self.j, us)
        })
        .map(drop)
    }

    /// Step to the next entry; false at the end (for now).
    pub fn step(&mut self) -> Result<bool> {
        // SAFETY: `j` is open.
        check("sd_journal_next", unsafe { (self.lib.next)(self.j) }).map(|r| r > 0)
    }

    /// The current entry's cursor.
    pub fn cursor(&mut self) -> Result<String> {
        let mut p: *mut c_char = std::ptr::null_mut();
        // SAFETY: `p` is a valid out-pointer; on success it holds a malloc'd string we free.
        check("sd_journal_get_cursor", unsafe {
            (self.lib.get_cursor)(self.j, &mut p)
        })?;
        if p.is_null() {
            return Err(Error::invalid("sd-journal gave no cursor"));
        }
        // SAFETY: `p` is a NUL-terminated string from malloc, read once and freed.
        unsafe {
            let s = CStr::from_ptr(p).to_string_lossy().into_owned();
            libc::free(p.cast());
            Ok(s)
        }
    }

    /// When journald received the current entry, in µs since the epoch.
    pub fn realtime_us(&mut self) -> Result<u64> {
        let mut us = 0u64;
        // SAFETY: `us` is a valid out-pointer.
        check("sd_journal_get_realtime_usec", unsafe {
            (self.lib.get_realtime_usec)(self.j, &mut us)
        })?;
        Ok(us)
    }

    /// The current entry's value of `field` (the first, if it has several), or `None`. The
    /// bytes are sd-journal's, valid until the next call on this journal: hence `&mut self`.
    pub fn data(&mut self, field: &CStr) -> Result<Option<&[u8]>> {
        let mut p: *const c_void = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: valid out-pointers; on success `p` points at `len` bytes `FIELD=value`.
        let r = unsafe { (self.lib.get_data)(self.j, field.as_ptr(), &mut p, &mut len) };
        if r == -libc::ENOENT {
            return Ok(None);
        }
        check("sd_journal_get_data", r)?;
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: sd-journal guarantees `len` readable bytes at `p` until the next call on
        // `j`, which the borrow of `self` prevents.
        let all = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
        let name = field.to_bytes();
        Ok(all
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(b"=")))
    }

    /// Wait up to `timeout` for the journal to change; new files (rotation, a restarted
    /// journald) and removed ones (vacuuming) are taken in here.
    pub fn wait(&mut self, timeout: Duration) -> Result<()> {
        let us = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
        // SAFETY: `j` is open.
        check("sd_journal_wait", unsafe { (self.lib.wait)(self.j, us) }).map(drop)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: `j` is open and closed once, here.
        unsafe { (self.lib.close)(self.j) }
    }
}
