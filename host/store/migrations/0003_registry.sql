-- Run artifacts logged through the MLflow artifact proxy (bytes in the
-- content-addressed artifact store), and the model registry.

CREATE TABLE tracking_artifacts (
    path        TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE registered_models (
    name                    TEXT PRIMARY KEY,
    creation_timestamp      BIGINT NOT NULL,
    last_updated_timestamp  BIGINT NOT NULL,
    description             TEXT NOT NULL
);

CREATE TABLE registered_model_tags (
    name   TEXT NOT NULL REFERENCES registered_models(name) ON DELETE CASCADE ON UPDATE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (name, key)
);

CREATE TABLE model_versions (
    name                    TEXT NOT NULL REFERENCES registered_models(name) ON DELETE CASCADE ON UPDATE CASCADE,
    version                 BIGINT NOT NULL,
    creation_timestamp      BIGINT NOT NULL,
    last_updated_timestamp  BIGINT NOT NULL,
    description             TEXT NOT NULL,
    source                  TEXT NOT NULL,
    run_id                  TEXT,
    current_stage           TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE model_version_tags (
    name     TEXT NOT NULL,
    version  BIGINT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE registered_model_aliases (
    name     TEXT NOT NULL,
    alias    TEXT NOT NULL,
    version  BIGINT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON DELETE CASCADE ON UPDATE CASCADE
);
