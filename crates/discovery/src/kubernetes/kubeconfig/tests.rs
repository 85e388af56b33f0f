use std::path::Path;

use super::*;

/// Standard base64 with padding, for writing `*-data` fields.
fn encode_base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A kubeconfig with one context `ctx` joining `cluster` and `user`, each
/// given as the YAML lines of its body.
fn kubeconfig(cluster: &[&str], user: &[&str]) -> String {
    let indent =
        |lines: &[&str]| -> String { lines.iter().map(|l| format!("      {l}\n")).collect() };
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n\
         clusters:\n  - name: c1\n    cluster:\n{}\
         users:\n  - name: u1\n    user:\n{}\
         contexts:\n  - name: ctx\n    context: {{cluster: c1, user: u1, namespace: ns}}\n\
         preferences: {{}}\n",
        indent(cluster),
        indent(user)
    )
}

fn access_error(text: &str) -> String {
    access(text, Path::new("/etc/kube")).unwrap_err()
}

#[test]
fn data_forms_give_inline_tls_material_and_a_token() {
    let text = kubeconfig(
        &[
            "server: https://k8s.example:6443/",
            &format!("certificate-authority-data: {}", encode_base64(b"CA PEM")),
            "tls-server-name: kubernetes.default",
        ],
        &[
            &format!("client-certificate-data: {}", encode_base64(b"CERT PEM")),
            &format!("client-key-data: {}", encode_base64(b"KEY PEM")),
            "token: abc",
        ],
    );
    let access = access(&text, Path::new("/etc/kube")).unwrap();
    assert_eq!(access.server, "https://k8s.example:6443");
    let tls = &access.http_client.tls_config;
    assert_eq!(tls.ca, "CA PEM");
    assert_eq!(tls.cert, "CERT PEM");
    assert_eq!(tls.key.expose(), "KEY PEM");
    assert_eq!(tls.server_name, "kubernetes.default");
    assert!(!tls.insecure_skip_verify);
    assert_eq!((tls.ca_file.as_str(), tls.cert_file.as_str()), ("", ""));
    assert_eq!(access.token.unwrap().current("u").unwrap(), "abc");
    assert_eq!(access.http_client.basic_auth, None);
    assert!(access.http_client.proxy_from_environment);
}

#[test]
fn file_forms_are_taken_from_the_kubeconfig_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    for file in ["ca.pem", "certs/client.pem", "token"] {
        std::fs::write(dir.path().join(file), "x\n").unwrap();
    }
    let key = dir.path().join("elsewhere-key.pem");
    std::fs::write(&key, "x").unwrap();
    let text = kubeconfig(
        &["server: https://k8s:6443", "certificate-authority: ca.pem"],
        &[
            "client-certificate: certs/client.pem",
            &format!("client-key: {}", key.display()),
            "tokenFile: ./token",
        ],
    );
    let path = dir.path().join("config");
    std::fs::write(&path, text).unwrap();
    let access = load(&path).unwrap();
    let tls = &access.http_client.tls_config;
    let joined = |p: &str| dir.path().join(p).display().to_string();
    assert_eq!(tls.ca_file, joined("ca.pem"));
    assert_eq!(tls.cert_file, joined("certs/client.pem"));
    assert_eq!(tls.key_file, key.display().to_string());
    assert_eq!((tls.ca.as_str(), tls.cert.as_str()), ("", ""));
    assert!(tls.key.is_empty());
    assert_eq!(access.token.unwrap().current("u").unwrap(), "x");
}

#[test]
fn the_current_context_picks_cluster_and_user() {
    let text = "
current-context: staging
clusters:
  - name: prod
    cluster: {server: https://prod:6443}
  - name: staging
    cluster: {server: 'staging:8080'}
users:
  - name: admin
    user: {token: admin-token}
  - name: viewer
    user: {username: view, password: secret}
contexts:
  - name: prod
    context: {cluster: prod, user: admin}
  - name: staging
    context: {cluster: staging, user: viewer}
";
    let access = access(text, Path::new("/")).unwrap();
    // No scheme and no TLS settings: plain http, as client-go.
    assert_eq!(access.server, "http://staging:8080");
    let basic = access.http_client.basic_auth.unwrap();
    assert_eq!(basic.username, "view");
    assert_eq!(basic.password.expose(), "secret");
    assert!(access.token.is_none());
}

#[test]
fn a_scheme_less_server_uses_https_with_tls_settings() {
    let text = kubeconfig(&["server: k8s:6443", "insecure-skip-tls-verify: true"], &[]);
    let access = access(&text, Path::new("/")).unwrap();
    assert_eq!(access.server, "https://k8s:6443");
    assert!(access.http_client.tls_config.insecure_skip_verify);
}

#[test]
fn a_proxy_url_replaces_the_environment_proxy() {
    let text = kubeconfig(
        &["server: https://k8s", "proxy-url: http://proxy:3128"],
        &[],
    );
    let access = access(&text, Path::new("/")).unwrap();
    assert_eq!(access.http_client.proxy_url, "http://proxy:3128");
    assert!(!access.http_client.proxy_from_environment);
}

#[test]
fn null_sections_and_an_undefined_user_are_accepted() {
    let text = "
apiVersion: v1
kind: Config
current-context: c
clusters: [{name: k, cluster: {server: 'https://k'}}]
users: null
contexts: [{name: c, context: {cluster: k, user: nobody}}]
extensions: null
";
    let access = access(text, Path::new("/")).unwrap();
    assert_eq!(access.server, "https://k");
    assert!(access.token.is_none() && access.http_client.basic_auth.is_none());
}

#[test]
fn context_errors_name_the_context() {
    let text = kubeconfig(&["server: https://k"], &[]);
    assert_eq!(
        access_error(&text.replace("current-context: ctx", "current-context: other")),
        r#"current-context "other": no such context"#
    );
    assert_eq!(
        access_error(&text.replace("current-context: ctx\n", "")),
        "current-context is not set"
    );
    assert_eq!(access_error(""), "current-context is not set");
    assert_eq!(
        access_error(&text.replace("cluster: c1,", "cluster: gone,")),
        r#"context "ctx": no cluster "gone""#
    );
    assert_eq!(
        access_error(&kubeconfig(&["insecure-skip-tls-verify: false"], &[])),
        r#"cluster "c1": server is not set"#
    );
    assert_eq!(
        access_error(&text.replace(
            "contexts:\n",
            "contexts:\n  - name: ctx\n    context: {cluster: c1}\n"
        )),
        r#"contexts: duplicate name "ctx""#
    );
}

#[test]
fn bad_base64_names_the_field() {
    let text = kubeconfig(
        &[
            "server: https://k",
            "certificate-authority-data: not*base64AA",
        ],
        &[],
    );
    assert_eq!(
        access_error(&text),
        r#"cluster "c1": certificate-authority-data: invalid base64: Invalid symbol 42, offset 3."#
    );
    let text = kubeconfig(
        &["server: https://k"],
        &["client-certificate-data: abc", "client-key-data: abcd"],
    );
    assert_eq!(
        access_error(&text),
        r#"user "u1": client-certificate-data: invalid base64: Invalid padding"#
    );
}

#[test]
fn plugins_and_impersonation_are_refused_by_field() {
    for (user, field) in [
        (
            "exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}",
            "exec",
        ),
        ("auth-provider: {name: gcp}", "auth-provider"),
        ("as: someone", "as"),
        ("as-groups: [admins]", "as-groups"),
    ] {
        let error = access_error(&kubeconfig(&["server: https://k"], &[user]));
        assert!(
            error.starts_with(&format!(r#"user "u1": users[].user.{field}: "#)),
            "{error}"
        );
        assert!(
            error.ends_with("not supported by Hearth's kubernetes discovery"),
            "{error}"
        );
    }
}

#[test]
fn conflicting_or_incomplete_settings_are_errors() {
    let error = |cluster: &[&str], user: &[&str]| {
        let mut lines = vec!["server: https://k"];
        lines.extend(cluster);
        access_error(&kubeconfig(&lines, user))
    };
    let data = format!("client-key-data: {}", encode_base64(b"k"));
    assert_eq!(
        error(&[], &[&data]),
        r#"user "u1": client-certificate-data or client-certificate must be specified to use client-key"#
    );
    assert_eq!(
        error(&[], &["token: t", "username: u"]),
        r#"user "u1": more than one authentication method (token and username/password), only one is allowed"#
    );
    let ca = format!("certificate-authority-data: {}", encode_base64(b"ca"));
    assert_eq!(
        error(&[&ca, "insecure-skip-tls-verify: true"], &[]),
        r#"cluster "c1": specifying a root certificates file with the insecure flag is not allowed"#
    );
    assert_eq!(
        error(
            &[],
            &[
                "client-certificate: /nonexistent/c.pem",
                "client-key: k.pem"
            ]
        ),
        r#"user "u1": unable to read client-certificate /nonexistent/c.pem: No such file or directory (os error 2)"#
    );
    assert_eq!(
        error(&["certificate-authority: ca.crt"], &[]),
        r#"cluster "c1": unable to read certificate-authority /etc/kube/ca.crt: No such file or directory (os error 2)"#
    );
    assert_eq!(
        access_error("apiVersion: v2\nkind: Config\n"),
        r#"apiVersion "v2" is not supported (v1 is)"#
    );
    assert_eq!(
        access_error("apiVersion: v1\nkind: Pod\n"),
        r#"kind "Pod" is not a kubeconfig (Config)"#
    );
    assert!(!access_error("clusters: {not: a list}").is_empty());
}

#[test]
fn the_token_file_is_read_at_start_and_again_on_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let text = kubeconfig(&["server: https://k"], &["tokenFile: token"]);
    assert_eq!(
        access(&text, dir.path()).unwrap_err(),
        format!(
            r#"user "u1": unable to read tokenFile {}: No such file or directory (os error 2)"#,
            dir.path().join("token").display()
        )
    );
    std::fs::write(dir.path().join("token"), "\n").unwrap();
    assert_eq!(
        access(&text, dir.path()).unwrap_err(),
        format!(
            r#"user "u1": tokenFile {} is empty"#,
            dir.path().join("token").display()
        )
    );
    std::fs::write(dir.path().join("token"), "first\n").unwrap();
    let token = access(&text, dir.path()).unwrap().token.unwrap();
    assert_eq!(token.current("u").unwrap(), "first");
    std::fs::write(dir.path().join("token"), "second").unwrap();
    assert_eq!(token.current("u").unwrap(), "second");
}

#[test]
fn a_missing_kubeconfig_is_a_read_error() {
    let error = load(Path::new("/nonexistent/kubeconfig")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "read /nonexistent/kubeconfig: No such file or directory (os error 2)"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, "current-context: nope\n").unwrap();
    assert_eq!(
        load(&path).unwrap_err().to_string(),
        format!(
            r#"parse {}: current-context "nope": no such context"#,
            path.display()
        )
    );
}

#[test]
fn base64_decoding() {
    for text in [
        "",
        "Zg==",
        "Zm8=",
        "Zm9v",
        "Zm9vYmFy",
        "Zm9v\nYmFy\n",
        "/+/+",
    ] {
        let decoded = decode_base64(text).unwrap();
        assert_eq!(encode_base64(&decoded), text.replace('\n', ""));
    }
    assert_eq!(decode_base64("Zm9vYg==").unwrap(), b"foob");
    assert!(decode_base64("Zm9vY").is_err());
    assert!(decode_base64("Zg=a").is_err());
    assert!(decode_base64("Z===").is_err());
    assert!(decode_base64("Zm9v_-==").is_err());
}
