CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE alerts_sent (
	user_key VARCHAR(320) NOT NULL, 
	kind VARCHAR(20) NOT NULL, 
	month VARCHAR(7) NOT NULL, 
	threshold VARCHAR(10) NOT NULL, 
	sent_at DATETIME NOT NULL, 
	CONSTRAINT pk_alerts_sent PRIMARY KEY (user_key, kind, month, threshold)
);
CREATE TABLE approver_assignments (
	requester VARCHAR(32) NOT NULL, 
	approver VARCHAR(32) NOT NULL, 
	set_by VARCHAR(32) NOT NULL, 
	set_at DATETIME NOT NULL, 
	CONSTRAINT pk_approver_assignments PRIMARY KEY (requester)
);
CREATE TABLE budget_requests (
	id INTEGER NOT NULL, 
	requester VARCHAR(32) NOT NULL, 
	amount_usd BIGINT NOT NULL, 
	granted_usd BIGINT, 
	reason TEXT, 
	scope VARCHAR(10) NOT NULL, 
	month VARCHAR(7) NOT NULL, 
	status VARCHAR(10) NOT NULL, 
	approvers JSON NOT NULL, 
	limit_before_usd BIGINT NOT NULL, 
	decided_by VARCHAR(32), 
	decided_at DATETIME, 
	decision_note TEXT, 
	automatic BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	reminded_at DATETIME, 
	messages JSON NOT NULL, 
	CONSTRAINT pk_budget_requests PRIMARY KEY (id)
);
CREATE INDEX ix_budget_requests_status_created_at ON budget_requests (status, created_at);
CREATE UNIQUE INDEX uq_budget_requests_one_pending ON budget_requests (requester) WHERE status = 'pending';
CREATE TABLE budgets (
	user_key VARCHAR(320) NOT NULL, 
	monthly_usd BIGINT NOT NULL, 
	set_by VARCHAR(32) NOT NULL, 
	set_at DATETIME NOT NULL, 
	CONSTRAINT pk_budgets PRIMARY KEY (user_key)
);
CREATE TABLE digest_runs (
	channel VARCHAR(32) NOT NULL, 
	period VARCHAR(10) NOT NULL, 
	period_start DATE NOT NULL, 
	status VARCHAR(10) NOT NULL, 
	claimed_by VARCHAR(100) NOT NULL, 
	claimed_at DATETIME NOT NULL, 
	lease_until DATETIME NOT NULL, 
	attempts INTEGER NOT NULL, 
	posted_at DATETIME, 
	message_ts VARCHAR(32), 
	last_error TEXT, 
	CONSTRAINT pk_digest_runs PRIMARY KEY (channel, period, period_start)
);
CREATE TABLE digest_subscriptions (
	id INTEGER NOT NULL, 
	channel VARCHAR(32) NOT NULL, 
	local_time VARCHAR(5) NOT NULL, 
	period VARCHAR(10) NOT NULL, 
	top INTEGER NOT NULL, 
	leaderboard VARCHAR(10), 
	created_by VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_digest_subscriptions PRIMARY KEY (id), 
	CONSTRAINT uq_digest_subscriptions_channel_period UNIQUE (channel, period)
);
CREATE TABLE identities (
	external_id VARCHAR(320) NOT NULL, 
	slack_user_id VARCHAR(32), 
	source VARCHAR(20) NOT NULL, 
	checked_at DATETIME NOT NULL, 
	set_by VARCHAR(32), 
	CONSTRAINT pk_identities PRIMARY KEY (external_id)
);
CREATE TABLE outbox (
	id INTEGER NOT NULL, 
	msg_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(40) NOT NULL, 
	payload JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	attempts INTEGER NOT NULL, 
	delivered_at DATETIME, 
	last_error TEXT, 
	locked_until DATETIME, 
	CONSTRAINT pk_outbox PRIMARY KEY (id), 
	CONSTRAINT uq_outbox_msg_id UNIQUE (msg_id)
);
CREATE INDEX ix_outbox_pending ON outbox (delivered_at, next_attempt_at);
CREATE TABLE people (
	slack_user_id VARCHAR(32) NOT NULL, 
	display_name VARCHAR(200), 
	email VARCHAR(320), 
	tz VARCHAR(64), 
	is_workspace_admin BOOLEAN NOT NULL, 
	fetched_at DATETIME NOT NULL, 
	CONSTRAINT pk_people PRIMARY KEY (slack_user_id)
);
CREATE TABLE settings (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	CONSTRAINT pk_settings PRIMARY KEY ("key")
);
CREATE TABLE slack_events_seen (
	event_id VARCHAR(64) NOT NULL, 
	seen_at DATETIME NOT NULL, 
	CONSTRAINT pk_slack_events_seen PRIMARY KEY (event_id)
);
CREATE TABLE usage_daily (
	user_key VARCHAR(320) NOT NULL, 
	day DATE NOT NULL, 
	input_tokens BIGINT DEFAULT '0' NOT NULL, 
	cached_input_tokens BIGINT DEFAULT '0' NOT NULL, 
	output_tokens BIGINT DEFAULT '0' NOT NULL, 
	reasoning_tokens BIGINT DEFAULT '0' NOT NULL, 
	cost_usd BIGINT DEFAULT '0' NOT NULL, 
	events BIGINT DEFAULT '0' NOT NULL, 
	unpriced_events BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_daily PRIMARY KEY (user_key, day)
);
CREATE INDEX ix_usage_daily_day ON usage_daily (day);
CREATE TABLE usage_daily_model (
	user_key VARCHAR(320) NOT NULL, 
	day DATE NOT NULL, 
	model VARCHAR(200) NOT NULL, 
	input_tokens BIGINT DEFAULT '0' NOT NULL, 
	cached_input_tokens BIGINT DEFAULT '0' NOT NULL, 
	output_tokens BIGINT DEFAULT '0' NOT NULL, 
	reasoning_tokens BIGINT DEFAULT '0' NOT NULL, 
	cost_usd BIGINT DEFAULT '0' NOT NULL, 
	events BIGINT DEFAULT '0' NOT NULL, 
	unpriced_events BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_daily_model PRIMARY KEY (user_key, day, model)
);
CREATE INDEX ix_usage_daily_model_day ON usage_daily_model (day);
CREATE TABLE usage_events (
	event_id VARCHAR(200) NOT NULL, 
	occurred_at DATETIME NOT NULL, 
	day DATE NOT NULL, 
	received_at DATETIME NOT NULL, 
	source VARCHAR(20) NOT NULL, 
	subject VARCHAR(320) NOT NULL, 
	user_key VARCHAR(320) NOT NULL, 
	model VARCHAR(200) NOT NULL, 
	provider VARCHAR(100), 
	team VARCHAR(200), 
	project VARCHAR(200), 
	input_tokens BIGINT DEFAULT '0' NOT NULL, 
	cached_input_tokens BIGINT DEFAULT '0' NOT NULL, 
	output_tokens BIGINT DEFAULT '0' NOT NULL, 
	reasoning_tokens BIGINT DEFAULT '0' NOT NULL, 
	cost_usd BIGINT DEFAULT '0' NOT NULL, 
	price_source VARCHAR(60) NOT NULL, 
	unpriced BOOLEAN NOT NULL, 
	metadata JSON, 
	CONSTRAINT pk_usage_events PRIMARY KEY (event_id)
);
CREATE INDEX ix_usage_events_subject ON usage_events (subject);
CREATE INDEX ix_usage_events_unpriced ON usage_events (model) WHERE unpriced;
CREATE INDEX ix_usage_events_user_key_day ON usage_events (user_key, day);
CREATE TABLE usage_monthly (
	user_key VARCHAR(320) NOT NULL, 
	month VARCHAR(7) NOT NULL, 
	input_tokens BIGINT DEFAULT '0' NOT NULL, 
	cached_input_tokens BIGINT DEFAULT '0' NOT NULL, 
	output_tokens BIGINT DEFAULT '0' NOT NULL, 
	reasoning_tokens BIGINT DEFAULT '0' NOT NULL, 
	cost_usd BIGINT DEFAULT '0' NOT NULL, 
	events BIGINT DEFAULT '0' NOT NULL, 
	unpriced_events BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_monthly PRIMARY KEY (user_key, month)
);
CREATE INDEX ix_usage_monthly_month ON usage_monthly (month);
CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	actor VARCHAR(32) NOT NULL, 
	action VARCHAR(40) NOT NULL, 
	subject_user VARCHAR(320), 
	request_id INTEGER, 
	details JSON NOT NULL, 
	CONSTRAINT pk_audit_log PRIMARY KEY (id), 
	CONSTRAINT fk_audit_log_request_id_budget_requests FOREIGN KEY(request_id) REFERENCES budget_requests (id)
);
CREATE INDEX ix_audit_log_subject_user_at ON audit_log (subject_user, at);
CREATE TABLE budget_raises (
	id INTEGER NOT NULL, 
	user_key VARCHAR(320) NOT NULL, 
	month VARCHAR(7) NOT NULL, 
	amount_usd BIGINT NOT NULL, 
	request_id INTEGER, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_budget_raises PRIMARY KEY (id), 
	CONSTRAINT fk_budget_raises_request_id_budget_requests FOREIGN KEY(request_id) REFERENCES budget_requests (id), 
	CONSTRAINT uq_budget_raises_request_id UNIQUE (request_id)
);
CREATE INDEX ix_budget_raises_user_key_month ON budget_raises (user_key, month);
