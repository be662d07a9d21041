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
    for (id, _) in vmpath::check::ovs::OVS_CATALOGUE {
        assert!(
            readme.contains(&format!("`{id}`")),
            "README.md does not list {id}"
        );
    }
    for (id, _) in vmpath::check::router::ROUTER_CATALOGUE {
        assert!(
            readme.contains(&format!("`{id}`")),
            "README.md does not list {id}"
        );
    }
    // vmpath plumb: every action, outcome, exit code and the documented JSON fields
    for word in [
        "`create-tap`",
        "`set-mac`",
        "`set-mtu`",
        "`set-up`",
        "`delete-address`",
        "`add-address`",
        "`sysctl`",
        "`add-route`",
        "`delete-route`",
        "`write-dhcp-host`",
        "`reload-dnsmasq`",
        "`nothing-to-do`",
        "`planned`",
        "`repaired`",
        "`partial`",
        "`blocked`",
        "`rolled-back`",
        "`rollback-incomplete`",
        "\"actions\"",
        "\"applied\"",
        "\"outcome\"",
        "\"equivalent\"",
        "busy: held by pid N since",
        "VMPATH_PLUMB_FAIL_STEP",
        "VMPATH_PLUMB_LOCK",
        "VMPATH_PLUMB_AUDIT",
    ] {
        assert!(
            readme.contains(word),
            "README.md does not document plumb's {word}"
        );
    }
    let help = vmpath::check::catalogue_help();
    for (id, _) in vmpath::check::CATALOGUE {
        assert!(help.contains(id));
    }
}

#[test]
fn readme_documents_the_json_error_document_and_every_error_kind() {
    use vmpath::error::Error;
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(r#"{"error": {"kind": "#) && readme.contains(r#""exit_code": 3}}"#),
        "README.md lacks the JSON error document"
    );
    for e in [
        Error::usage(""),
        Error::not_here(""),
        Error::refused(""),
        Error::privilege(""),
        Error::busy(""),
        Error::unknown(""),
        Error::change(""),
    ] {
        let doc = serde_json::to_value(e.document()).expect("serializes");
        let kind = doc["error"]["kind"].as_str().expect("kind");
        assert!(
            readme.contains(&format!("`{kind}`")),
            "README.md does not name the error kind {kind}"
        );
    }
}
