//! Directories that hold keys, the store or cached state: made (with
//! their parents) and kept `0700` whatever the umask, so another local
//! user can neither read nor list them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The mode of every private directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `dir` if it is missing and sets it to [`PRIVATE_DIR_MODE`]
/// (an existing one too: a directory made by an older version, or under
/// a loose umask, is tightened on the next start).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode != PRIVATE_DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_and_an_existing_directory_end_up_0700() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("a/b");
        private_dir(&new).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&new), 0o700);
        let loose = root.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700);
    }
}
