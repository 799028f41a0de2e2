//! Accounts and sign-in: argon2id password hashes, short-lived signed access tokens, rotating
//! refresh tokens (stored hashed; a reused one revokes its whole family), per-address and
//! per-account sign-in limits, and one answer for a wrong email and a wrong password.

use crate::error::{JsonBody, Result, ServiceError};
use crate::tokens::AccessClaims;
use crate::util::{b64, now_ms, random_bytes, random_id};
use crate::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/signup", post(signup))
        .route("/v1/auth/signin", post(signin))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/signout", post(signout))
        .route("/v1/me", get(me).patch(update_me))
        .route("/v1/plans", get(plans))
        .route("/v1/admin/accounts/{id}", patch(admin_update_account))
}

/// The plan every new account starts on; an administrator changes it.
pub const DEFAULT_PLAN: &str = "basic";

/// Refuses a plan the service does not offer, naming the ones it does.
fn check_plan(state: &AppState, plan: &str) -> Result<()> {
    if state.plans.contains_key(plan) {
        return Ok(());
    }
    let mut known: Vec<_> = state.plans.keys().cloned().collect();
    known.sort();
    Err(ServiceError::BadRequest(format!(
        "plan: unknown plan (expected one of {})",
        known.join(", ")
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountUpdate {
    plan: String,
}

/// `PATCH /v1/admin/accounts/{id}`: an administrator moves an account to another plan (a
/// billing system would call this). It takes effect with the account's next access token.
async fn admin_update_account(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    axum::extract::Path(id): axum::extract::Path<String>,
    JsonBody(body): JsonBody<AccountUpdate>,
) -> Result<StatusCode> {
    check_plan(&state, &body.plan)?;
    let updated = sqlx::query("UPDATE accounts SET plan_id = $2 WHERE id = $1")
        .bind(&id)
        .bind(&body.plan)
        .execute(&state.db)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(ServiceError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An argon2id hash (PHC string) of `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| ServiceError::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("password hash: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The signed-in account, from `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct Viewer(pub AccessClaims);

/// A signed-in content-ops administrator.
#[derive(Debug, Clone)]
pub struct Admin(pub AccessClaims);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(&parts.headers).ok_or(ServiceError::Unauthorized)?;
        state
            .signer
            .verify_access(token, now_ms())
            .map(Viewer)
            .ok_or(ServiceError::Unauthorized)
    }
}

/// The token of `Authorization: Bearer <token>`, if the request has one.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let Viewer(claims) = Viewer::from_request_parts(parts, state).await?;
        if claims.role != "admin" {
            return Err(ServiceError::forbidden(
                "admin_only",
                "this needs a content-ops administrator",
            ));
        }
        Ok(Admin(claims))
    }
}

/// The client's address: the socket's, or, behind a proxy the operator runs
/// (`--trust-forwarded`), the address that proxy saw (see [`client_address`]).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let connect = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(ClientAddress(client_address(
            &parts.headers,
            connect,
            state.config.trust_forwarded,
        )))
    }
}

/// Without `trust`, the socket's address. With it, the socket's peer is the operator's proxy,
/// which appends the address it saw to `X-Forwarded-For`: so the rightmost entry (of the last
/// header, if there are several) is the one to believe; anything left of it was written by
/// the client and proves nothing. It must parse as an IP address, else the socket's address
/// is used. Either way the result is a short canonical address, never header text.
fn client_address(
    headers: &axum::http::HeaderMap,
    connect: Option<SocketAddr>,
    trust: bool,
) -> String {
    let socket = || connect.map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
    if !trust {
        return socket();
    }
    let nearest = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|entry| entry.trim().parse::<std::net::IpAddr>().ok());
    nearest.map_or_else(socket, |ip| ip.to_string())
}

#[cfg(test)]
mod client_address_tests {
    use super::client_address;
    use axum::http::{HeaderMap, HeaderValue};

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_nearest_proxy_s_entry_counts_not_the_client_s() {
        let peer = Some("10.0.0.1:5000".parse().unwrap());
        // The client wrote "6.6.6.6"; the proxy appended what it saw.
        assert_eq!(
            client_address(&with(&["6.6.6.6, 203.0.113.7"]), peer, true),
            "203.0.113.7"
        );
        assert_eq!(
            client_address(&with(&["6.6.6.6", "203.0.113.8"]), peer, true),
            "203.0.113.8"
        );
        assert_eq!(
            client_address(&with(&[" 2001:db8::1 "]), peer, true),
            "2001:db8::1"
        );
        // Not an address: the socket's.
        let long = "x".repeat(100_000);
        assert_eq!(client_address(&with(&[&long]), peer, true), "10.0.0.1");
        assert_eq!(
            client_address(&with(&["1.2.3.4, nonsense"]), peer, true),
            "10.0.0.1"
        );
        // Not trusted: the socket's, whatever the header says.
        assert_eq!(
            client_address(&with(&["203.0.113.7"]), peer, false),
            "10.0.0.1"
        );
        assert_eq!(client_address(&HeaderMap::new(), peer, true), "10.0.0.1");
    }
}

#[derive(Debug, Deserialize)]
pub struct SignUp {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub plan: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub account: Value,
}

fn normalise_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ServiceError::BadRequest(
            "email: expected an address like name@example.com".into(),
        ));
    }
    Ok(email)
}

/// Creates an account (used by the sign-up route and `reel serve account`).
pub async fn create_account(
    state: &AppState,
    email: &str,
    password: &str,
    role: &str,
    plan: &str,
) -> Result<Value> {
    let email = normalise_email(email)?;
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(ServiceError::BadRequest(
            "password: between 8 characters and 1 KiB".into(),
        ));
    }
    check_plan(state, plan)?;
    if role != "viewer" && role != "admin" {
        return Err(ServiceError::BadRequest("role: viewer or admin".into()));
    }
    let password = password.to_string();
    let hash = blocking(move || hash_password(&password)).await??;
    let id = random_id();
    let inserted = sqlx::query(
        "INSERT INTO accounts (id, email, password_hash, role, plan_id, max_age, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&email)
    .bind(&hash)
    .bind(role)
    .bind(plan)
    .bind(18i64)
    .bind(now_ms())
    .execute(&state.db)
    .await;
    match inserted {
        Ok(_) => Ok(json!({ "id": id, "email": email, "role": role, "plan": plan })),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ServiceError::Conflict(
            "an account with this email already exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn signup(
    State(state): State<AppState>,
    ClientAddress(ip): ClientAddress,
    JsonBody(body): JsonBody<SignUp>,
) -> Result<(StatusCode, Json<Value>)> {
    state
        .signup_ip
        .take(&ip)
        .map_err(|retry_after| ServiceError::RateLimited { retry_after })?;
    // A viewer does not choose a paid plan: every account starts on the default one.
    if let Some(plan) = body.plan.as_deref().filter(|p| *p != DEFAULT_PLAN) {
        check_plan(&state, plan)?;
        return Err(ServiceError::forbidden(
            "plan",
            format!("plan: new accounts get the {DEFAULT_PLAN} plan; an administrator changes it"),
        ));
    }
    let account =
        create_account(&state, &body.email, &body.password, "viewer", DEFAULT_PLAN).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

async fn issue_tokens(
    state: &AppState,
    account: (String, String, String, String, i64),
    family: Option<String>,
) -> Result<TokenPair> {
    let (id, email, role, plan, max_age) = account;
    let now = now_ms();
    let ttl = state.config.access_ttl;
    let access_token = state.signer.access(&AccessClaims {
        sub: id.clone(),
        role: role.clone(),
        plan: plan.clone(),
        max_age,
        exp: now + (ttl as i64) * 1000,
    });
    let refresh_token = b64(&random_bytes::<32>());
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, account_id, family, expires_at, revoked, created_at)
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(token_hash(&refresh_token))
    .bind(&id)
    .bind(family.unwrap_or_else(random_id))
    .bind(now + (state.config.refresh_ttl as i64) * 1000)
    .bind(now)
    .execute(&state.db)
    .await?;
    Ok(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token,
        account: json!({ "id": id, "email": email, "role": role, "plan": plan }),
    })
}

async fn signin(
    State(state): State<AppState>,
    ClientAddress(ip): ClientAddress,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Json<TokenPair>> {
    state
        .signin_ip
        .take(&ip)
        .map_err(|retry_after| ServiceError::RateLimited { retry_after })?;
    let email = body.email.trim().to_lowercase();
    if email.len() > 254 || email.chars().any(char::is_control) {
        return Err(ServiceError::BadCredentials);
    }
    // Counted before the password is checked, atomically: parallel guesses cannot all pass
    // the limit while the first ones are still being verified. A success forgets the count.
    state
        .signin_account
        .take(&email)
        .map_err(|retry_after| ServiceError::RateLimited { retry_after })?;
    let row: Option<(String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, email, password_hash, role, plan_id, max_age FROM accounts WHERE email = $1",
    )
    .bind(&email)
    .fetch_optional(&state.db)
    .await?;
    // Verify against a dummy hash when the email is unknown: same work, same answer.
    let hash = row
        .as_ref()
        .map_or_else(|| state.dummy_hash.clone(), |r| r.2.clone());
    let password = body.password;
    let ok = blocking(move || verify_password(&password, &hash)).await? && row.is_some();
    let Some((id, email, _, role, plan, max_age)) = row.filter(|_| ok) else {
        tracing::info!(outcome = "refused", "sign-in");
        return Err(ServiceError::BadCredentials);
    };
    state.signin_account.forget(&email);
    tracing::info!(account = %id, outcome = "signed in", "sign-in");
    Ok(Json(
        issue_tokens(&state, (id, email, role, plan, max_age), None).await?,
    ))
}

async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenPair>> {
    let hash = token_hash(&body.refresh_token);
    let row: Option<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT account_id, family, expires_at, revoked FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(&state.db)
    .await?;
    let Some((account_id, family, expires_at, revoked)) = row else {
        return Err(ServiceError::Unauthorized);
    };
    if revoked != 0 {
        // A rotated-out token used again: someone holds a copy. End the whole family.
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family = $1")
            .bind(&family)
            .execute(&state.db)
            .await?;
        tracing::warn!(account = %account_id, "refresh token reused; its family is revoked");
        return Err(ServiceError::Unauthorized);
    }
    if expires_at <= now_ms() {
        return Err(ServiceError::Unauthorized);
    }
    // Rotate: only one request can take the token.
    let taken =
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = $1 AND revoked = 0")
            .bind(&hash)
            .execute(&state.db)
            .await?;
    if taken.rows_affected() != 1 {
        return Err(ServiceError::Unauthorized);
    }
    let account: Option<(String, String, String, String, i64)> =
        sqlx::query_as("SELECT id, email, role, plan_id, max_age FROM accounts WHERE id = $1")
            .bind(&account_id)
            .fetch_optional(&state.db)
            .await?;
    let account = account.ok_or(ServiceError::Unauthorized)?;
    Ok(Json(issue_tokens(&state, account, Some(family)).await?))
}

async fn signout(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<StatusCode> {
    let hash = token_hash(&body.refresh_token);
    let family: Option<(String,)> =
        sqlx::query_as("SELECT family FROM refresh_tokens WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(&state.db)
            .await?;
    if let Some((family,)) = family {
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family = $1")
            .bind(&family)
            .execute(&state.db)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, Viewer(claims): Viewer) -> Result<Json<Value>> {
    let row: Option<(String, String, String, i64)> =
        sqlx::query_as("SELECT email, role, plan_id, max_age FROM accounts WHERE id = $1")
            .bind(&claims.sub)
            .fetch_optional(&state.db)
            .await?;
    let (email, role, plan, max_age) = row.ok_or(ServiceError::Unauthorized)?;
    Ok(Json(json!({
        "id": claims.sub, "email": email, "role": role, "max_age": max_age,
        "plan": state.plans.get(&plan),
    })))
}

async fn plans(State(state): State<AppState>) -> Json<Value> {
    let mut plans: Vec<_> = state.plans.values().cloned().collect();
    plans.sort_by_key(|p| p.max_height);
    Json(json!({ "plans": plans }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// The oldest minimum age this profile may watch (0-18): a maturity limit.
    pub max_age: i64,
}

/// Sets the profile's maturity limit. It applies from the next access token (refresh).
async fn update_me(
    State(state): State<AppState>,
    Viewer(claims): Viewer,
    JsonBody(body): JsonBody<ProfileUpdate>,
) -> Result<StatusCode> {
    if !(0..=18).contains(&body.max_age) {
        return Err(ServiceError::BadRequest("max_age: 0 to 18".into()));
    }
    sqlx::query("UPDATE accounts SET max_age = $2 WHERE id = $1")
        .bind(&claims.sub)
        .bind(body.max_age)
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
