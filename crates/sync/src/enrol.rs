//! Enrolment and leases: registering the device with the authority, pinning the
//! authority's key, and taking blocks of invoice numbers before they run short.

use crate::client::Client;
use crate::error::SyncError;
use crate::route::{Call, Route, Signer};
use crate::{Progress, SyncOptions};
use chrono::Utc;
use kaipiao_core::wire::{AuthorityInfo, EnrollRequest, EnrollResponse};
use kaipiao_core::{Code, DeviceKey, Lease, PublicKey};
use kaipiao_ledger::{Ledger, LedgerError, LocalDevice};
use reqwest::Method;
use serde::Serialize;

/// What `enroll` got from the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollOutcome {
    pub device_id: String,
    pub authority_public_key: String,
    /// The first lease, already stored.
    pub lease: Lease,
}

/// A new lease is taken when fewer than 1/`TOP_UP_FRACTION` of the last lease's numbers
/// are left (20%).
const TOP_UP_FRACTION: u64 = 5;

fn no_progress(_: Progress) {}

/// The device, with the key checked against it.
fn local_device(ledger: &Ledger, key: &DeviceKey) -> Result<LocalDevice, SyncError> {
    let device = ledger.device()?.ok_or(LedgerError::NotInitialized)?;
    if !key.belongs_to(&device.public_key) {
        return Err(SyncError::WrongKey);
    }
    Ok(device)
}

/// Registers the device with the authority (`POST /v1/devices`), checks that the
/// authority's key is the one `GET /v1/authority` advertises (on every endpoint that
/// answers), records the enrolment (pinning that key and the servers, primary first),
/// then takes and stores the first lease.
///
/// A device already enrolled but without a lease (the lease request failed last time)
/// just takes its lease; one that has a lease is refused with `already_enrolled`.
pub async fn enroll(
    ledger: &Ledger,
    key: &DeviceKey,
    servers: &[String],
    token: &str,
    opts: &SyncOptions,
) -> Result<EnrollOutcome, SyncError> {
    enroll_pinned(ledger, key, servers, token, None, opts).await
}

/// [`enroll`], trusting only an authority whose key has this fingerprint
/// ([`PublicKey::fingerprint`], given to the shop in advance): it is read from
/// `GET /v1/authority` before anything is sent, and an authority with another key is
/// refused (`authority_key_mismatch`) without enrolling. None: the key the enrolling
/// server names is pinned (trust on first use).
pub async fn enroll_pinned(
    ledger: &Ledger,
    key: &DeviceKey,
    servers: &[String],
    token: &str,
    fingerprint: Option<&str>,
    opts: &SyncOptions,
) -> Result<EnrollOutcome, SyncError> {
    let trust = Trust {
        fingerprint,
        allow_insecure_http: false,
    };
    enroll_trusting(ledger, key, servers, token, &trust, opts).await
}

/// What an enrolment trusts, beyond `https://` and this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trust<'a> {
    /// Only an authority whose key has this fingerprint ([`enroll_pinned`]).
    pub fingerprint: Option<&'a str>,
    /// Plain `http://` to the given servers even where they are not this machine
    /// (`kaipiao enroll --allow-insecure-http`, for tests): kept with the device for those
    /// endpoints only. Without it such a server is refused (`invalid_server`) before
    /// anything is sent.
    pub allow_insecure_http: bool,
}

/// [`enroll_pinned`] with every choice of [`Trust`].
pub async fn enroll_trusting(
    ledger: &Ledger,
    key: &DeviceKey,
    servers: &[String],
    token: &str,
    trust: &Trust<'_>,
    opts: &SyncOptions,
) -> Result<EnrollOutcome, SyncError> {
    let fingerprint = trust.fingerprint;
    let device = local_device(ledger, key)?;
    let normalized = crate::client::normalize_servers(servers)?;
    let allowed_plain: &[String] = if trust.allow_insecure_http {
        &normalized
    } else {
        &[]
    };
    for server in &normalized {
        kaipiao_core::server::check_transport(server, allowed_plain).map_err(|p| {
            SyncError::InvalidServer {
                url: server.clone(),
                reason: p.text(kaipiao_core::Lang::En),
            }
        })?;
    }
    let client = Client::new(servers, opts)?;
    if let Some(device_id) = device.device_id.clone() {
        if !ledger.leases()?.is_empty() {
            return Err(SyncError::AlreadyEnrolled { device_id });
        }
        let authority_public_key = device
            .authority_public_key
            .clone()
            .ok_or(LedgerError::NotEnrolled)?;
        let stored = if device.servers.is_empty() {
            client.endpoints().to_vec()
        } else {
            device.servers.clone()
        };
        let mut route = Route::new(Client::new(&stored, opts)?, opts, &no_progress);
        let lease = take_lease(&mut route, ledger, key, &device_id, true).await?;
        return Ok(EnrollOutcome {
            device_id,
            authority_public_key,
            lease,
        });
    }

    let endpoints = client.endpoints().to_vec();
    let mut route = Route::new(client, opts, &no_progress);
    // Read first when a fingerprint was given, so that nothing goes to another authority.
    let mut advertised = None;
    if let Some(expected) = fingerprint {
        let expected = expected.trim().to_ascii_lowercase();
        let info = advertised_authority(&mut route).await?;
        let found = PublicKey::from_base64(&info.public_key)
            .map(|k| k.fingerprint())
            .unwrap_or_else(|_| info.public_key.clone());
        if found != expected {
            return Err(SyncError::AuthorityKeyMismatch {
                endpoint: "the enrolling server".into(),
                expected,
                found,
            });
        }
        route.progressed();
        advertised = Some(info);
    }
    let request = EnrollRequest {
        enrollment_token: token.to_string(),
        seller: device.seller.clone(),
        device_name: device.device_name.clone(),
        public_key: device.public_key.clone(),
    };
    let body = serde_json::to_vec(&request)
        .map_err(|e| SyncError::InvalidResponse(format!("enrolment request: {e}")))?;
    let enrolled = route
        .call(
            Call {
                method: Method::POST,
                path: "/v1/devices",
                body: Some(&body),
                success: 201,
                patient: true,
            },
            None,
            parse_enrollment,
        )
        .await?;
    let authority = PublicKey::from_base64(&enrolled.authority_public_key).map_err(|_| {
        SyncError::InvalidResponse("authority_public_key is not a base64 Ed25519 key".into())
    })?;

    // The key must be the one the authority publishes, on every endpoint that answers;
    // at least one must confirm it.
    route.progressed();
    let advertised = match advertised {
        Some(info) => info,
        None => advertised_authority(&mut route).await?,
    };
    check_authority_key(&authority, &advertised, "the enrolling server")?;
    for endpoint in &endpoints {
        // Backups that are down now are checked by every receipt and lease later.
        if let Ok(info) = route.client.authority(endpoint).await {
            check_authority_key(&authority, &info, endpoint)?;
        }
    }

    ledger.record_enrollment_allowing(
        &enrolled.device_id,
        &authority.to_base64(),
        &endpoints,
        allowed_plain,
        Utc::now(),
    )?;
    // Whether the authority is a sandbox, for the mark on printed invoices. Not said (or
    // no answer): nothing is recorded, and the paper is marked as a sandbox's.
    for endpoint in &endpoints {
        if let Ok(health) = route.client.health(endpoint).await {
            if let Some(sandbox) = health.sandbox {
                ledger.set_authority_sandbox(sandbox)?;
            }
            break;
        }
    }
    route.progressed();
    let lease = take_lease(&mut route, ledger, key, &enrolled.device_id, true).await?;
    Ok(EnrollOutcome {
        device_id: enrolled.device_id,
        authority_public_key: authority.to_base64(),
        lease,
    })
}

/// `GET /v1/authority` on the route's endpoints: the key the authority publishes.
async fn advertised_authority(route: &mut Route<'_>) -> Result<AuthorityInfo, SyncError> {
    route
        .call(
            Call {
                method: Method::GET,
                path: "/v1/authority",
                body: None,
                success: 200,
                patient: true,
            },
            None,
            |b| serde_json::from_str::<AuthorityInfo>(b).map_err(|e| e.to_string()),
        )
        .await
}

fn parse_enrollment(body: &str) -> Result<EnrollResponse, String> {
    let r: EnrollResponse = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if uuid::Uuid::parse_str(&r.device_id).is_err() {
        return Err(format!("device_id {:?} is not a UUID", r.device_id));
    }
    Ok(r)
}

fn check_authority_key(
    expected: &PublicKey,
    info: &AuthorityInfo,
    endpoint: &str,
) -> Result<(), SyncError> {
    match PublicKey::from_base64(&info.public_key) {
        Ok(found) if found == *expected => Ok(()),
        _ => Err(SyncError::AuthorityKeyMismatch {
            endpoint: endpoint.to_string(),
            expected: expected.to_base64(),
            found: info.public_key.clone(),
        }),
    }
}

/// Whether the device should take a new lease: no numbers left, or fewer than 20% of
/// the last lease's size.
pub(crate) fn needs_lease(ledger: &Ledger) -> Result<bool, SyncError> {
    let leases = ledger.leases()?;
    let left: u64 = leases.iter().map(|l| l.numbers_left).sum();
    let Some(last) = leases.last() else {
        return Ok(true);
    };
    let size = last
        .lease
        .last
        .saturating_sub(last.lease.first)
        .saturating_add(1);
    Ok(left == 0 || left.saturating_mul(TOP_UP_FRACTION) < size)
}

/// Takes a lease (`POST /v1/leases {request_id}`, device-signed) and stores it; the ledger verifies it
/// against the pinned authority key and the device id. A lease that does not verify is
/// not stored and raises an alert.
pub(crate) async fn take_lease(
    route: &mut Route<'_>,
    ledger: &Ledger,
    key: &DeviceKey,
    device_id: &str,
    patient: bool,
) -> Result<Lease, SyncError> {
    request_lease(route, ledger, key, device_id, patient, false).await
}

/// [`take_lease`], and with `supersede` a restored device's request: the numbers left in
/// every earlier lease are given up and the block granted lies past them all.
pub(crate) async fn request_lease(
    route: &mut Route<'_>,
    ledger: &Ledger,
    key: &DeviceKey,
    device_id: &str,
    patient: bool,
    supersede: bool,
) -> Result<Lease, SyncError> {
    let signer = Signer {
        ledger,
        key,
        device_id,
    };
    // One id for this request and all its retries: an answer lost on the way back and
    // asked for again is the same lease, not a second block of numbers.
    let id = uuid::Uuid::new_v4().to_string();
    let body = if supersede {
        serde_json::json!({ "request_id": id, "supersede": true })
    } else {
        serde_json::json!({ "request_id": id })
    }
    .to_string();
    let lease = route
        .call(
            Call {
                method: Method::POST,
                path: "/v1/leases",
                body: Some(body.as_bytes()),
                success: 201,
                patient,
            },
            Some(&signer),
            |b| serde_json::from_str::<Lease>(b).map_err(|e| e.to_string()),
        )
        .await?;
    match ledger.store_lease(&lease, Utc::now()) {
        Ok(()) => Ok(lease),
        Err(e @ (LedgerError::Sqlite(_) | LedgerError::Io(_))) => Err(e.into()),
        Err(e) => {
            let text = format!(
                "the lease {} granted by the authority was refused: {e}",
                lease.lease_id
            );
            route.alert(ledger, Code::BadLease.as_str(), &text, None)?;
            Err(e.into())
        }
    }
}

/// Takes a new lease when the device's numbers run short (fewer than 20% of the last
/// lease's size left, or none), retrying like a sync run; `Ok(None)` when none is needed.
pub async fn top_up_leases(
    ledger: &Ledger,
    key: &DeviceKey,
    opts: &SyncOptions,
) -> Result<Option<Lease>, SyncError> {
    let device = local_device(ledger, key)?;
    let device_id = device.device_id.ok_or(LedgerError::NotEnrolled)?;
    if !needs_lease(ledger)? {
        return Ok(None);
    }
    let client = Client::new(&device.servers, opts)?;
    let mut route = Route::new(client, opts, &no_progress);
    route.watch_outages(ledger)?;
    let lease = take_lease(&mut route, ledger, key, &device_id, true).await;
    route.finish_outage()?;
    lease.map(Some)
}
