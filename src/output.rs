//! Output files written safely: a conversion either leaves its complete output
//! under the name asked for, or leaves that name as it was, whatever happens
//! (an error, SIGINT, SIGTERM, SIGKILL), and never writes anywhere else.
//!
//! - The target is checked before any work: a directory, a name ending in `/`,
//!   the input file itself (also through a hard or symbolic link) or a
//!   terminal is refused.
//! - Symbolic links are followed, one at a time as the kernel does (relative
//!   targets from the link's directory; a loop is an error): the file they
//!   name is written, not the link, and a dangling link's target is created.
//! - A name for one of this process's open descriptors (`/dev/stdout`,
//!   `/dev/fd/N`, `/proc/self/fd/N`, a shell's `>(...)`) is written through
//!   that descriptor, at its offset and with its flags (`>>` appends),
//!   whatever it is: a pipe, a file the shell opened, `/dev/full`.
//! - A target that exists and is not a regular file (a device such as
//!   `/dev/null`, a FIFO) is written directly, never replaced. Whatever such
//!   direct outputs received before a failure stays there. Should another
//!   process put a link or a regular file at that name between the check and
//!   the open, it is refused, never followed or written over in place.
//! - Otherwise the output is written to a file in the target's directory that
//!   has no name (Linux's `O_TMPFILE`): if the process dies, it vanishes. Only
//!   once complete and flushed is it given a name and renamed over the
//!   target. Where the filesystem has no unnamed files, it is a new file with
//!   a random name (`.gguf-dequant-<random>.tmp`, created exclusively, so no
//!   planted file or link is ever opened), removed on failure and, with
//!   [`remove_on_signal`], on SIGINT and SIGTERM.

use std::ffi::CString;
use std::fs::File;
use std::io::{ErrorKind, IsTerminal, Write};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::{Error, Result};

/// An output being written; [`OutputFile::commit`] puts it in place.
pub struct OutputFile {
    file: File,
    target: PathBuf,
    how: How,
    committed: bool,
}

enum How {
    /// An `O_TMPFILE` file in `dir`: named only at commit.
    Unnamed { dir: PathBuf },
    /// A file at this random name beside the target, renamed at commit.
    Named { temp: PathBuf },
    /// The target itself (not a regular file).
    Direct,
}

pub use crate::gguf::{file_identity as identity, FileIdentity as Identity};

impl OutputFile {
    /// Checks `target` and opens the file the output is written to. `input`
    /// is the identity of the file being read, which must not be the target.
    pub fn create(target: &Path, input: Option<Identity>) -> Result<OutputFile> {
        let shown = target.display();
        let target = match resolve(target)? {
            Resolved::Descriptor(fd) => {
                // SAFETY: F_DUPFD_CLOEXEC only reads `fd`; a closed one is EBADF.
                let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
                if dup < 0 {
                    let e = std::io::Error::last_os_error();
                    return Err(Error::io(format!("output {shown}"), e));
                }
                // SAFETY: `dup` is a fresh descriptor this process owns.
                let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(dup) };
                return OutputFile::direct(file, target.to_path_buf(), input);
            }
            Resolved::Path(p) => p,
        };
        let existing = match std::fs::metadata(&target) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("checking the output {shown}"), e)),
        };
        if let Some(m) = &existing {
            if m.is_dir() {
                return Err(Error::Invalid(format!("output {shown} is a directory")));
            }
            if !m.is_file() {
                let file = open_special(&target, &shown.to_string())?;
                return OutputFile::direct(file, target, input);
            }
            if input == Some((m.dev(), m.ino())) {
                return Err(Error::Invalid(format!(
                    "output {shown} is the input file: refusing to overwrite it"
                )));
            }
        }
        // `resolve` made the parent a canonical directory
        let dir = target
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        if let Some(file) = open_unnamed(&dir) {
            return Ok(OutputFile {
                file,
                target,
                how: How::Unnamed { dir },
                committed: false,
            });
        }
        let (file, temp) = create_random(&dir)?;
        set_signal_cleanup(Some(&temp));
        Ok(OutputFile {
            file,
            target,
            how: How::Named { temp },
            committed: false,
        })
    }

    /// An output written straight into `file`, an existing target that is not
    /// a regular file or a descriptor the caller opened: never the input, a
    /// directory or a terminal (binary data would drive it).
    fn direct(file: File, target: PathBuf, input: Option<Identity>) -> Result<OutputFile> {
        let shown = target.display();
        let m = file
            .metadata()
            .map_err(|e| Error::io(format!("checking the output {shown}"), e))?;
        if m.is_dir() {
            return Err(Error::Invalid(format!("output {shown} is a directory")));
        }
        if input == Some((m.dev(), m.ino())) {
            return Err(Error::Invalid(format!(
                "output {shown} is the input file: refusing to overwrite it"
            )));
        }
        if file.is_terminal() {
            return Err(Error::Invalid(format!(
                "output {shown} is a terminal: refusing to write binary data to it"
            )));
        }
        Ok(OutputFile {
            file,
            target,
            how: How::Direct,
            committed: false,
        })
    }

    /// Refuses, before any work, an output of `bytes` that the target's
    /// filesystem has no room for (a device or FIFO target takes anything).
    pub fn check_space(&self, bytes: u64) -> Result<()> {
        let dir = match &self.how {
            How::Direct => return Ok(()),
            How::Unnamed { dir } => dir.clone(),
            How::Named { temp } => temp
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        };
        let Some(free) = free_bytes(&dir) else {
            return Ok(()); // unknown: the writes will say
        };
        if bytes > free {
            return Err(Error::Invalid(format!(
                "output {}: {bytes} bytes to write and {free} free on its filesystem",
                self.target.display()
            )));
        }
        Ok(())
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Flushes the output to disk and puts it under the target's name.
    pub fn commit(mut self) -> Result<()> {
        let shown = self.target.display().to_string();
        self.file
            .flush()
            .map_err(|e| Error::io(format!("writing {shown}"), e))?;
        if !matches!(self.how, How::Direct) {
            self.file
                .sync_all()
                .map_err(|e| Error::io(format!("syncing {shown}"), e))?;
        }
        match &self.how {
            How::Direct => {}
            How::Named { temp } => {
                std::fs::rename(temp, &self.target)
                    .map_err(|e| Error::io(format!("renaming into {shown}"), e))?;
            }
            How::Unnamed { dir } => {
                let temp = link_unnamed(&self.file, dir)
                    .map_err(|e| Error::io(format!("naming the output in {}", dir.display()), e))?;
                set_signal_cleanup(Some(&temp));
                let renamed = std::fs::rename(&temp, &self.target);
                if renamed.is_err() {
                    let _ = std::fs::remove_file(&temp);
                }
                renamed.map_err(|e| Error::io(format!("renaming into {shown}"), e))?;
            }
        }
        set_signal_cleanup(None);
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.committed {
            if let How::Named { temp } = &self.how {
                let _ = std::fs::remove_file(temp);
                set_signal_cleanup(None);
            }
        }
    }
}

/// Opens `target`, an output that existed and was not a regular file when
/// checked (a FIFO, a device), to write straight into it. Another process may
/// have put something else at that name since: a symbolic link is refused
/// (`O_NOFOLLOW`: ELOOP), never followed, and a regular file (a hard link to
/// another file, say) is refused once open, before anything is written, as it
/// would be written over in place from its start. `shown` names the output in
/// errors.
fn open_special(target: &Path, shown: &str) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        // a terminal is refused later: opening it must not make it this
        // process's controlling terminal meanwhile
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(target)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Invalid(format!(
                    "output {shown} became a symbolic link after it was checked: \
                     refusing to follow it"
                ))
            } else {
                Error::io(format!("opening {shown}"), e)
            }
        })?;
    let m = file
        .metadata()
        .map_err(|e| Error::io(format!("checking the output {shown}"), e))?;
    if m.is_file() {
        return Err(Error::Invalid(format!(
            "output {shown} became a regular file after it was checked: \
             refusing to write over it in place"
        )));
    }
    Ok(file)
}

/// What an output name resolves to.
enum Resolved {
    /// The file to write, every symbolic link followed: its parent is a
    /// canonical directory; it may not exist (a dangling link names the file
    /// it would create).
    Path(PathBuf),
    /// One of this process's open descriptors (`/dev/stdout`, `/dev/fd/N`,
    /// `/proc/self/fd/N`, a shell's `>(...)`).
    Descriptor(RawFd),
}

/// As many links as Linux follows in one path (MAXSYMLINKS) before ELOOP.
const MAX_LINKS: usize = 40;

/// Follows `path`'s symbolic links one at a time, as opening it would, but
/// stops at this process's own descriptors: `/proc/self/fd/N` is a link the
/// kernel resolves to the open file (a pipe, a terminal, a file opened with
/// `O_APPEND`), which its text does not name.
fn resolve(path: &Path) -> Result<Resolved> {
    let shown = path.display();
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let name = match path.file_name() {
            Some(n) if !path.as_os_str().as_bytes().ends_with(b"/") => n.to_owned(),
            _ => {
                return Err(Error::Invalid(format!(
                    "output {shown}: names a directory, not a file"
                )))
            }
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = std::fs::canonicalize(parent)
            .map_err(|e| Error::io(format!("output directory {}", parent.display()), e))?;
        if let Some(fd) = own_descriptor(&dir, &name) {
            return Ok(Resolved::Descriptor(fd));
        }
        let full = dir.join(&name);
        match std::fs::read_link(&full) {
            // a relative target is relative to the link's directory
            Ok(to) => path = dir.join(to),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => {
                return Ok(Resolved::Path(full))
            }
            Err(e) => return Err(Error::io(format!("checking the output {shown}"), e)),
        }
    }
    Err(Error::Invalid(format!(
        "output {shown}: more than {MAX_LINKS} symbolic links to follow (a loop?)"
    )))
}

/// `N` when `dir/name` is `/proc/<this process>/fd/N` (or a thread's
/// `/proc/<pid>/task/<tid>/fd/N`), `dir` canonical. The process is what
/// `/proc/self` names, which is its id as that /proc counts (in a PID
/// namespace, not always `getpid`).
fn own_descriptor(dir: &Path, name: &std::ffi::OsStr) -> Option<RawFd> {
    let me = std::fs::canonicalize("/proc/self").ok()?;
    let mut parts = dir.strip_prefix(me).ok()?.iter();
    match (
        parts.next()?.to_str()?,
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        ("fd", None, None, None) => {}
        ("task", Some(_), Some(fd), None) if fd == "fd" => {}
        _ => return None,
    }
    name.to_str()?.parse().ok()
}

/// Bytes an unprivileged writer may still use on `dir`'s filesystem.
fn free_bytes(dir: &Path) -> Option<u64> {
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is a valid out-parameter; the path is
    // NUL-terminated.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut st) == 0).then_some(st)?
    };
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// A file without a name in `dir`, where the filesystem has them.
fn open_unnamed(dir: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::FromRawFd;
        let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: a NUL-terminated path; the descriptor returned, if any, is
        // owned by nobody else and handed to `File`.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644 as libc::c_uint,
            )
        };
        // SAFETY: `fd` is a fresh descriptor this process owns.
        (fd >= 0).then(|| unsafe { File::from_raw_fd(fd) })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        None
    }
}

/// Gives the unnamed file a random name in `dir`.
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    let proc_path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    for _ in 0..16 {
        let temp = dir.join(random_name());
        let c = CString::new(temp.as_os_str().as_bytes())?;
        // SAFETY: NUL-terminated paths; linkat creates a name for the open
        // file (AT_SYMLINK_FOLLOW resolves the /proc link to it), failing
        // rather than replacing anything that exists.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_path.as_ptr(),
                libc::AT_FDCWD,
                c.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc == 0 {
            return Ok(temp);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    Err(std::io::Error::other("no free temporary name"))
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_: &File, _: &Path) -> std::io::Result<PathBuf> {
    unreachable!("unnamed files are only made on Linux")
}

/// A new file at a random name in `dir`, created exclusively (never an
/// existing file, FIFO or link).
fn create_random(dir: &Path) -> Result<(File, PathBuf)> {
    for _ in 0..16 {
        let temp = dir.join(random_name());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(f) => return Ok((f, temp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::io(
                    format!("creating a file in {}", dir.display()),
                    e,
                ))
            }
        }
    }
    Err(Error::Invalid(format!(
        "no free temporary name in {}",
        dir.display()
    )))
}

/// `.gguf-dequant-<16 random hex digits>.tmp`: short, whatever the target's
/// name, and unpredictable.
fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!(".gguf-dequant-{:016x}.tmp", h.finish())
}

/// The named temporary file to remove on SIGINT/SIGTERM (a leaked C string),
/// or null.
static CLEANUP: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

fn set_signal_cleanup(path: Option<&Path>) {
    let new = path
        .and_then(|p| CString::new(p.as_os_str().as_bytes()).ok())
        .map_or(std::ptr::null_mut(), CString::into_raw);
    // The previous path is leaked, not freed: a handler may be reading it
    // (a few bytes per output file).
    CLEANUP.swap(new, Ordering::SeqCst);
}

extern "C" fn on_signal(sig: libc::c_int) {
    let path = CLEANUP.load(Ordering::SeqCst);
    if !path.is_null() {
        // SAFETY: a NUL-terminated path that is never freed; unlink and _exit
        // are async-signal-safe.
        unsafe { libc::unlink(path) };
    }
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(128 + sig) };
}

/// Makes SIGINT and SIGTERM remove the output being written (if it has a
/// name yet) and exit with status 128 + the signal (130, 143), as shells
/// report a process ended by it.
pub fn remove_on_signal() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the
        // handler only calls async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Writing a GGUF file lives here, above the reader and writer, so that they
/// know nothing of output files.
impl crate::gguf::GgufWriter {
    /// Writes the file to `path`, replacing it only once complete (see
    /// [`crate::output`]: links followed, FIFOs and devices written directly).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        self.write_file_with(path, &mut crate::gguf::no_deferred)
    }

    /// [`GgufWriter::write_file`](crate::gguf::GgufWriter::write_file), asking
    /// `fill` for the bytes of each deferred tensor.
    pub fn write_file_with(
        &self,
        path: impl AsRef<Path>,
        fill: &mut crate::gguf::FillTensor<'_>,
    ) -> Result<()> {
        let mut output = OutputFile::create(path.as_ref(), None)?;
        self.write_to_with(output.file(), fill)?;
        output.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// A fresh folder for one test, removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new(label: &str) -> Dir {
            let dir =
                std::env::temp_dir().join(format!("gdq-output-{label}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// What `create` does with the name once it has checked it is not a
    /// regular file: opens it and writes the output into it.
    fn write_special(target: &Path) -> Result<File> {
        let mut file = open_special(target, "OUT")?;
        file.write_all(b"output").unwrap();
        Ok(file)
    }

    fn refused(got: Result<File>, why: &str) {
        match got {
            Ok(_) => panic!("written: expected '{why}'"),
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(why) && e.contains("OUT"), "{e}");
            }
        }
    }

    /// A symbolic link put at the name after the check (to a regular file,
    /// a FIFO or a device) is refused, not followed: its target is untouched.
    #[test]
    fn a_link_swapped_in_is_refused_not_followed() {
        let dir = Dir::new("swap-link");
        let victim = dir.0.join("victim");
        std::fs::write(&victim, b"VICTIM DATA").unwrap();
        let fifo = dir.0.join("fifo");
        mkfifo(&fifo);
        for to in [&victim, &fifo, Path::new("/dev/null")] {
            let out = dir.0.join("out");
            let _ = std::fs::remove_file(&out);
            std::os::unix::fs::symlink(to, &out).unwrap();
            refused(write_special(&out), "became a symbolic link");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"VICTIM DATA");
    }

    /// A regular file put at the name after the check (a hard link to
    /// another file, or any file) is refused before anything is written.
    #[test]
    fn a_regular_file_swapped_in_is_refused_not_written_over() {
        let dir = Dir::new("swap-file");
        let victim = dir.0.join("victim");
        std::fs::write(&victim, b"VICTIM DATA").unwrap();
        let out = dir.0.join("out");
        std::fs::hard_link(&victim, &out).unwrap();
        refused(write_special(&out), "became a regular file");
        assert_eq!(std::fs::read(&victim).unwrap(), b"VICTIM DATA");
        std::fs::remove_file(&out).unwrap();
        std::fs::write(&out, b"OLD").unwrap();
        refused(write_special(&out), "became a regular file");
        assert_eq!(std::fs::read(&out).unwrap(), b"OLD");
    }

    /// What it is there for: a FIFO (with a reader) and a device are written.
    #[test]
    fn fifos_and_devices_are_opened() {
        let dir = Dir::new("special");
        let fifo = dir.0.join("fifo");
        mkfifo(&fifo);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        drop(write_special(&fifo).unwrap());
        assert_eq!(reader.join().unwrap(), b"output");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());

        let null = write_special(Path::new("/dev/null")).unwrap();
        assert!(null.metadata().unwrap().file_type().is_char_device());
    }
}
