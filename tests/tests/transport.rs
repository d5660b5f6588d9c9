//! Transport (issue 10, item 5): `https://` is required except for this computer. A plain
//! `http://` server elsewhere is refused before anything is sent, unless the shop allows
//! it on purpose at enrolment (`--allow-insecure-http`, for tests), and then for those
//! endpoints only.

use kaipiao_tests::*;
use serde_json::json;

/// An address of this machine that is not loopback (the interface a packet to the
/// outside would leave by): what a shop on the LAN would type.
fn lan_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    socket
        .connect("10.255.255.255:1")
        .expect("this machine has a non-loopback IPv4 route");
    let ip = socket.local_addr().expect("its address").ip();
    assert!(!ip.is_loopback(), "no non-loopback address: {ip}");
    ip
}

#[test]
fn plain_http_beyond_this_computer_is_refused_unless_allowed_on_purpose() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taxd = Taxd::start_at(&dir.path().join("taxd.db"), "0.0.0.0:0", &[]);
    let port = taxd.addr.rsplit(':').next().expect("a port").to_string();
    let lan = format!("http://{}:{port}", lan_address());

    let shop = Shop::init_only();
    let out = shop.kaipiao(&["--json", "enroll", "--server", &lan, "--token", TOKEN]);
    out.expect_code(2);
    let doc = out.json();
    assert_eq!(doc["error"]["code"], json!("invalid_server"), "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("https://")),
        "{doc}"
    );
    // Refused before anything was sent: the authority never heard of this shop.
    assert!(taxd.requests().is_empty(), "{:?}", taxd.requests());
    assert_eq!(shop.status()["device_id"], json!(null));

    // Allowed on purpose: enrolled over plain http to that endpoint, which syncs.
    let out = shop.kaipiao(&[
        "--json",
        "enroll",
        "--server",
        &lan,
        "--token",
        TOKEN,
        "--allow-insecure-http",
    ]);
    out.expect_code(0);
    shop.issue(&small_draft("客户甲", "10.00"));
    let out = shop.sync();
    out.expect_code(0);
    assert_eq!(out.json()["accepted"], json!(1), "{out}");
}
