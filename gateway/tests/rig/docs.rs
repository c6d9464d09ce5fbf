//! The README shows the deployment files of `gateway/deploy/` verbatim, so
//! the documentation is the configuration the tests run.

use crate::common::{deploy_file, repo_root};

/// The contents of every fenced code block of `markdown` (backtick fences).
fn fenced_blocks(markdown: &str) -> Vec<String> {
    let ticks = |line: &str| line.len() - line.trim_start_matches('`').len();
    let mut blocks = Vec::new();
    let mut open: Option<(usize, Vec<&str>)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut open {
            None if ticks(trimmed) >= 3 => open = Some((ticks(trimmed), Vec::new())),
            None => {}
            Some((fence, lines)) => {
                if ticks(trimmed) >= *fence && trimmed.trim_end().trim_start_matches('`').is_empty()
                {
                    blocks.push(lines.join("\n"));
                    open = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    blocks
}

fn readme() -> String {
    let path = repo_root().join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Files the README shows verbatim.
const SHOWN: [&str; 5] = [
    "nginx.conf",
    "Caddyfile",
    "traefik.yml",
    "envoy.yaml",
    "ingress-nginx.yaml",
];

#[test]
fn the_readme_shows_the_deployed_nginx_caddy_traefik_envoy_and_ingress_files_verbatim() {
    let readme = readme();
    let blocks = fenced_blocks(&readme);
    for name in SHOWN {
        let file = deploy_file(name);
        assert!(
            blocks
                .iter()
                .any(|block| block.trim_end() == file.trim_end()),
            "README.md has no code block equal to gateway/deploy/{name}: copy the file into \
             the README's Gateway section again"
        );
    }
}

#[test]
fn the_readme_marks_the_configurations_no_test_runs_as_untested() {
    let readme = readme();
    let section = readme
        .split_once("\n## Gateway")
        .map(|(_, section)| section)
        .expect("README.md has a Gateway section");
    for name in ["traefik.yml", "envoy.yaml", "ingress-nginx.yaml"] {
        let file = deploy_file(name);
        assert!(
            file.to_lowercase().contains("untested here"),
            "gateway/deploy/{name} says it is untested here"
        );
        let at = section
            .find(file.trim_end())
            .unwrap_or_else(|| panic!("the Gateway section shows {name}"));
        let before = &section[..at];
        let heading = before.rfind("\n###").unwrap_or(0);
        assert!(
            before[heading..].contains("untested here"),
            "the README's text before {name} says it is untested here"
        );
    }
}

#[test]
fn fenced_blocks_are_read_exactly() {
    let markdown = "text\n```nginx\na\n  b\n```\nmore\n````md\n```x\n````\n";
    assert_eq!(fenced_blocks(markdown), ["a\n  b", "```x"]);
}
