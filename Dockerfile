# syntax=docker/dockerfile:1
#
# pullsecret-injector: one image for both components.
#   webhook:    gunicorn --config /app/gunicorn.conf.py   (the default CMD)
#   controller: pullsecret-injector controller
# Every setting comes from PSI_* environment variables (webhook/settings.py).
#
# Build: docker build -t pullsecret-injector:0.1.0 .
#        tools/build-image.sh   (buildah, no engine, no registry: a Debian 12 base built locally)
# tests/packaging/test_dockerfile.py replays the install and command lines below in a fresh venv,
# so keep them plain: one `python -m venv`, one `pip install`, exec-form CMD.

# The base of both stages. Any image with Python 3.11 at the same path in both stages and
# `python` on PATH will do; tools/build-image.sh passes a Debian 12 image it builds itself
# (python3, python3-venv, python-is-python3, ca-certificates) where no registry is reachable.
ARG BASE_IMAGE=python:3.11-slim

# ---- builder: resolve and install into a self-contained venv --------------------------------
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv

WORKDIR /src
RUN python -m venv /opt/venv

# Only what the wheel needs (see .dockerignore): source edits do not invalidate the venv layer
# more than necessary, and tests, tools and the chart never reach the image.
COPY pyproject.toml constraints.txt README.md ./
COPY webhook/ webhook/
COPY certs/ certs/

# constraints.txt pins every transitive dependency: the image runs exactly what CI tested.
# All dependencies ship manylinux wheels, so no compiler is needed even here. pip compiles
# the bytecode now, because the root filesystem is read-only at runtime. g=u: OpenShift runs
# the image with an arbitrary UID in group 0, so group 0 gets the owner's permissions.
RUN /opt/venv/bin/pip install --no-cache-dir -c constraints.txt . \
    && chmod -R g=u /opt/venv

# ---- runtime: the base image, the venv and the gunicorn config; nothing else ----------------
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="pullsecret-injector" \
      org.opencontainers.image.description="Admission webhook that injects image pull secrets into Pods and ServiceAccounts" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# HOME and TMPDIR point at /tmp, the one writable place (an emptyDir in the chart): the
# numeric user has no home directory, and the root filesystem is read-only.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# Same base image, same interpreter path: the venv's python symlink stays valid.
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY gunicorn.conf.py /app/gunicorn.conf.py

# Numeric, so the kubelet can verify runAsNonRoot without a runAsUser in the pod spec; the chart
# does not force a UID (OpenShift's restricted-v2 SCC assigns its own, in group 0).
USER 65532

# 8443: TLS admission webhook (PSI_PORT); 8080: plain-HTTP /livez, /readyz, /metrics
# (PSI_HEALTH_PORT for the webhook, PSI_METRICS_PORT for the controller).
EXPOSE 8443 8080

CMD ["gunicorn", "--config", "/app/gunicorn.conf.py"]
