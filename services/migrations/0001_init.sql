-- Portable between SQLite and PostgreSQL: text ids, BIGINT times (Unix milliseconds),
-- BIGINT 0/1 flags, text for JSON and for wrapped keys.
CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    max_height BIGINT NOT NULL,
    max_streams BIGINT NOT NULL
);
INSERT INTO plans (id, name, max_height, max_streams) VALUES
    ('mobile', 'Mobile', 360, 1),
    ('basic', 'Basic', 576, 1),
    ('standard', 'Standard', 1080, 2),
    ('premium', 'Premium', 2160, 4);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES plans(id),
    max_age BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    family TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE titles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL,
    description TEXT NOT NULL,
    genres TEXT NOT NULL,
    year BIGINT,
    maturity TEXT NOT NULL,
    min_age BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    min_height BIGINT NOT NULL,
    max_height BIGINT NOT NULL,
    available_from BIGINT,
    available_until BIGINT,
    hidden BIGINT NOT NULL,
    source TEXT NOT NULL,
    dash TEXT NOT NULL,
    hls TEXT NOT NULL,
    poster TEXT,
    record TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE title_keys (
    title_id TEXT NOT NULL REFERENCES titles(id),
    kid TEXT NOT NULL,
    class TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    PRIMARY KEY (title_id, kid)
);

CREATE TABLE playback_sessions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    title_id TEXT NOT NULL REFERENCES titles(id),
    device TEXT NOT NULL,
    max_height BIGINT NOT NULL,
    -- Key IDs (hex, comma-separated) the session is entitled to: audio and the video
    -- renditions within the plan.
    kids TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    stopped BIGINT NOT NULL
);
CREATE INDEX playback_sessions_account ON playback_sessions (account_id, stopped);

CREATE TABLE playback_events (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES playback_sessions(id),
    account_id TEXT NOT NULL,
    title_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    position_ms BIGINT NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX playback_events_session ON playback_events (session_id);

CREATE TABLE watch_progress (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    title_id TEXT NOT NULL REFERENCES titles(id),
    position_ms BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, title_id)
);

-- Every licence request, with key IDs only: never key bytes.
CREATE TABLE licence_audit (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    title_id TEXT NOT NULL,
    issued TEXT NOT NULL,
    refused TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX licence_audit_session ON licence_audit (session_id);
