#!/usr/bin/env bash
# Register ecsop's task definition and create (or update) its ECS service.
#
#   export ACCOUNT_ID=111122223333 REGION=us-east-1 CLUSTER=ops \
#          SUBNET_ID=subnet-0abc SECURITY_GROUP_ID=sg-0abc \
#          ECSOP_IMAGE=111122223333.dkr.ecr.us-east-1.amazonaws.com/ecsop@sha256:<digest> \
#          SPECS_REPO=https://github.com/acme/deploy-specs.git SPECS_REF=main \
#          GIT_SECRET_NAME=ecsop/git COORDINATION_TABLE=ecsop-coordination
#   ./deploy.sh render    # write rendered JSON to ./rendered/ and stop (no AWS calls)
#   ./deploy.sh apply     # render, then register the task definition and create/update the service
#
# The other images of the task definition are pinned by digest in task-definition.json
# (git-sync v4.3.0: the index digest a public cluster record shows for the tag; busybox
# 1.36: docker-library/repo-info repos/busybox/remote/1.36.md, commit 72e4be79, the same
# Docker Official Image ECR Public mirrors). Refresh: crane digest IMAGE:TAG.
#
# Prerequisites (see docs/production.md): the IAM roles `ecsop` (task role, with
# helm-free-deploy/iam/ecsop-daemon-policy.json) and `ecsop-task-execution`
# (AmazonECSTaskExecutionRolePolicy plus secretsmanager:GetSecretValue on the git
# secret), the log group /ecs/ecsop, and a security group allowing outbound
# HTTPS (AWS APIs, the git host) and inbound 9100 from your Prometheus.
set -euo pipefail
cd "$(dirname "$0")"

VARIABLES=(ACCOUNT_ID REGION CLUSTER SUBNET_ID SECURITY_GROUP_ID ECSOP_IMAGE SPECS_REPO SPECS_REF GIT_SECRET_NAME COORDINATION_TABLE)
OUT=${OUT:-rendered}

render() {
  local missing=() expr=() var
  for var in "${VARIABLES[@]}"; do
    if [[ -z "${!var:-}" ]]; then missing+=("$var"); fi
    expr+=(-e "s|\${${var}}|${!var:-}|g")
  done
  if ((${#missing[@]})); then
    echo "deploy.sh: set ${missing[*]} (see the top of this file)" >&2
    exit 2
  fi
  # A tag can be moved after review; ECS must run exactly the image that was built.
  if [[ ! "$ECSOP_IMAGE" =~ @sha256:[0-9a-f]{64}$ ]]; then
    echo "deploy.sh: pin ECSOP_IMAGE by digest (repository@sha256:<64 hex>, as docker push" \
      "or crane digest reports it), not by tag: $ECSOP_IMAGE" >&2
    exit 2
  fi
  mkdir -p "$OUT"
  local file
  for file in task-definition.json service.json; do
    sed "${expr[@]}" "$file" >"$OUT/$file"
    if grep -n '\${' "$OUT/$file" >&2; then
      echo "deploy.sh: unreplaced placeholder in $OUT/$file" >&2
      exit 2
    fi
  done
  echo "rendered into $OUT/"
}

coordination_table() {
  # What `ecsop coordination create-table` does: on-demand, key pk, TTL on ttl.
  if ! aws dynamodb describe-table --region "$REGION" --table-name "$COORDINATION_TABLE" >/dev/null 2>&1; then
    aws dynamodb create-table --region "$REGION" --table-name "$COORDINATION_TABLE" \
      --attribute-definitions AttributeName=pk,AttributeType=S \
      --key-schema AttributeName=pk,KeyType=HASH --billing-mode PAY_PER_REQUEST >/dev/null
    aws dynamodb wait table-exists --region "$REGION" --table-name "$COORDINATION_TABLE"
    aws dynamodb update-time-to-live --region "$REGION" --table-name "$COORDINATION_TABLE" \
      --time-to-live-specification Enabled=true,AttributeName=ttl >/dev/null
  fi
  echo "coordination table $COORDINATION_TABLE ready"
}

apply() {
  render
  coordination_table
  aws logs create-log-group --region "$REGION" --log-group-name /ecs/ecsop 2>/dev/null || true
  aws logs put-retention-policy --region "$REGION" --log-group-name /ecs/ecsop --retention-in-days 30
  local arn
  arn=$(aws ecs register-task-definition --region "$REGION" \
    --cli-input-json "file://$OUT/task-definition.json" \
    --query taskDefinition.taskDefinitionArn --output text)
  echo "registered $arn"
  local status
  status=$(aws ecs describe-services --region "$REGION" --cluster "$CLUSTER" --services ecsop \
    --query 'services[0].status' --output text)
  if [[ "$status" == "ACTIVE" ]]; then
    aws ecs update-service --region "$REGION" --cluster "$CLUSTER" --service ecsop \
      --task-definition "$arn" --query service.serviceArn --output text
  else
    aws ecs create-service --region "$REGION" --cli-input-json "file://$OUT/service.json" \
      --query service.serviceArn --output text
  fi
  aws ecs wait services-stable --region "$REGION" --cluster "$CLUSTER" --services ecsop
  echo "ecsop is running; logs: aws logs tail /ecs/ecsop --region $REGION --follow"
}

case "${1:-}" in
  render) render ;;
  apply) apply ;;
  *) echo "usage: $0 render|apply" >&2; exit 2 ;;
esac
