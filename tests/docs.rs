//! README.md documents every check id and every exit code.

#[test]
fn readme_lists_every_check_id_and_exit_code() {
    let readme = include_str!("../README.md");
    for (id, _) in vmpath::check::CATALOGUE {
        assert!(
            readme.contains(&format!("`{id}`")),
            "README.md does not list {id}"
        );
    }
    for code in [0, 1, 2, 3, 64] {
        assert!(
            readme.contains(&format!("| {code} |")),
            "README.md lacks exit code {code}"
        );
    }
    for (id, _) in vmpath::check::router::ROUTER_CATALOGUE {
        assert!(
            readme.contains(&format!("`{id}`")),
            "README.md does not list {id}"
        );
    }
    let help = vmpath::check::catalogue_help();
    for (id, _) in vmpath::check::CATALOGUE {
        assert!(help.contains(id));
    }
}
