# The image every Cloud Build step runs in (cloudbuild.yaml builds it
# first): make and Go for the tests and builds, the gcloud CLI with the
# Firestore emulator (Java) for the emulator-backed tests and the deploy
# steps, Terraform, the Docker CLI for `make images`, Chromium for the ops
# page test, zip for the function source, curl and jq for the smoke test.
ARG GO_VERSION=1.26.8
FROM golang:${GO_VERSION}

ARG TERRAFORM_VERSION=1.11.4

RUN apt-get update && apt-get install -y --no-install-recommends \
      apt-transport-https ca-certificates chromium curl gnupg jq make unzip zip default-jre-headless \
    && curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
      | gpg --dearmor -o /usr/share/keyrings/cloud.google.gpg \
    && echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
      > /etc/apt/sources.list.d/google-cloud-sdk.list \
    && curl -fsSL https://download.docker.com/linux/debian/gpg \
      | gpg --dearmor -o /usr/share/keyrings/docker.gpg \
    && echo "deb [signed-by=/usr/share/keyrings/docker.gpg] https://download.docker.com/linux/debian $(. /etc/os-release && echo "$VERSION_CODENAME") stable" \
      > /etc/apt/sources.list.d/docker.list \
    && curl -fsSL https://apt.releases.hashicorp.com/gpg \
      | gpg --dearmor -o /usr/share/keyrings/hashicorp.gpg \
    && echo "deb [signed-by=/usr/share/keyrings/hashicorp.gpg] https://apt.releases.hashicorp.com $(. /etc/os-release && echo "$VERSION_CODENAME") main" \
      > /etc/apt/sources.list.d/hashicorp.list \
    && apt-get update && apt-get install -y --no-install-recommends \
      google-cloud-cli google-cloud-cli-firestore-emulator docker-ce-cli "terraform=${TERRAFORM_VERSION}-*" \
    && rm -rf /var/lib/apt/lists/*
