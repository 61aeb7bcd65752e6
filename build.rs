//! Link GCC's unwinder statically (`libgcc_eh.a`) on GNU/Linux, so that the program needs no
//! `libgcc_s.so.1` at run time.
//!
//! Why: `relaylease hook` and `relaylease smtp-wrap` start once per login and once per SMTP
//! connection. Loading `libgcc_s` costs each start a mapping, its relocations and its
//! constructor, which asks the CPU for its features with CPUID instructions (on a virtual
//! machine each one traps to the hypervisor): 0.08-0.14 ms of a 1.4 ms start on the 2-core VM
//! the project is measured on (docs/performance.md). The unwinder linked in is the same code;
//! panics still unwind and are caught where the program catches them.
//!
//! Rust's standard library asks for `-lgcc_s` itself. Naming the static archive first
//! resolves the unwinder's symbols before the linker reaches `-lgcc_s`, which `--as-needed`
//! then leaves out. When the C compiler cannot name the archive, nothing changes (a warning
//! says so) and the program links against `libgcc_s` as before.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || env != "gnu" {
        return;
    }
    match libgcc_eh() {
        Ok(archive) => {
            if let Some(dir) = archive.parent() {
                println!("cargo:rustc-link-search=native={}", dir.display());
                println!("cargo:rustc-link-lib=static:+verbatim=libgcc_eh.a");
            }
        }
        Err(why) => println!("cargo:warning=linking libgcc_s dynamically: {why}"),
    }
}

/// Where the C compiler keeps `libgcc_eh.a`.
fn libgcc_eh() -> Result<PathBuf, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // A compiler that does not know the file prints its bare name back.
    if out.status.success() && path.is_absolute() && path.is_file() {
        Ok(path)
    } else {
        Err(format!("{cc} does not know where libgcc_eh.a is"))
    }
}
