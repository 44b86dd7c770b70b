use super::*;

#[test]
fn sealed_copy_refuses_writes() {
    let exe = File::open("/proc/self/exe").unwrap();
    assert!(!is_sealed(&exe));
    assert!(!is_sealed_exe(&exe));
    let memfd = seal_copy(&exe).unwrap();
    assert!(is_sealed(&memfd));
    assert!(is_sealed_exe(&memfd));
    assert_eq!(head(&memfd), head(&OwnedFd::from(exe)));
    let mut f = File::from(memfd);
    use std::io::Write;
    assert!(f.write_all(b"x").is_err());
}

#[test]
fn overlay_view_is_read_only_and_detached() {
    let fd = match overlay_view() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("SKIP overlay_view_is_read_only_and_detached: no overlayfs view here ({e})");
            return;
        }
    };
    let exe = File::open("/proc/self/exe").unwrap();
    assert!(same_file(&exe, &fd));
    assert!(
        is_sealed_exe(&fd),
        "detached read-only overlay is recognized as sealed"
    );
    assert_eq!(head(&fd), head(&OwnedFd::from(exe)));
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect_err("the overlay view must refuse writes");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
        "{err}"
    );
    // The mount is attached nowhere.
    let id = mount_id(fd.as_raw_fd()).unwrap();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.lines().any(|l| l.starts_with(&format!("{id} "))));
}

#[test]
fn sealed_exe_fd_is_sealed() {
    let fd = sealed_exe_fd().unwrap();
    assert!(is_sealed_exe(&fd));
}

#[test]
fn sealed_fd_of_a_path_is_sealed_and_the_same_binary() {
    let path = std::fs::read_link("/proc/self/exe").unwrap();
    let fd = sealed_fd_of(&path).unwrap();
    assert!(is_sealed_exe(&fd));
    assert_eq!(head(&fd), head(&OwnedFd::from(File::open(&path).unwrap())));
}
