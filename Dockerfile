# LOCAL DEMO ONLY (profile demo): this image runs the repository's channels.yaml listening on
# every interface WITHOUT TLS, HTTP documents WITHOUT sender authentication, and test INS
# accepted. Do not expose it to a hospital network. For production, mount a channels file with
# `engine.profile: production` (start from config/production.channels.yaml, add TLS and
# senders, see README "Security"): `aiguillage check` and `run` refuse it while it is unsafe.
#
# Aiguillage engine, embedded mode by default (SQLite under /data).
# Distributed mode (compose.yaml): AIGUILLAGE_DATABASE_URL=postgresql+psycopg://user@host/db,
# AIGUILLAGE_AMQP_URL=amqp://user:password@host:5672/%2F, and `run --role intake|worker`.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
RUN pip install --no-cache-dir .

COPY channels.yaml ./channels.yaml
COPY config ./config
RUN sed -i 's#sqlite:///var/aiguillage.db#sqlite:////data/aiguillage.db#; s#host: 127.0.0.1#host: 0.0.0.0#; s#path: var/inbox#path: /data/inbox#; s#key_file: var/keys/record.key#key_file: /data/keys/record.key#' channels.yaml \
    && useradd --system --home /data aiguillage && mkdir -p /data/keys && chmod 700 /data/keys \
    && chown aiguillage /data /data/keys
USER aiguillage
VOLUME /data
EXPOSE 2575 8081
STOPSIGNAL SIGTERM
ENTRYPOINT ["aiguillage"]
CMD ["run", "--config", "/app/channels.yaml"]
