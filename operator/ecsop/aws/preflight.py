"""Pre-flight lookups: does ECR hold each image, does the execution role exist.

Read by the reconcile pass only when a deploy is pending
(``ecsop.decision.release_flow.hold.needs``), judged by
``ecsop.decision.release_flow.preflight``.

- **Images**: one ``BatchGetImage`` per ECR repository (up to 100 image ids),
  asked of the registry the URI names (``registryId`` is the URI's account) in
  the URI's region, with the release's credentials. A ``failures`` entry
  ``ImageNotFound`` ("Requested image not found", API_ImageFailure,
  https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageFailure.html)
  or ``RepositoryNotFoundException`` is missing; any other answer AWS could
  not give is unknown. Images outside ECR are not looked up.
- **Execution role**: ``iam:GetRole`` by name (``NoSuchEntity`` is missing),
  only for a role in the service's own account: GetRole sees no other.

Found answers are kept ``FOUND_TTL_SECONDS`` (an image digest never changes,
but a lifecycle policy may delete it, and a role may be deleted); what is
missing or unknown is asked again on the next pending pass, so a fix is seen.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from ecsop.aws import clients
from ecsop.decision.release_flow.inputs import Found, Lookup
from ecsop.spec.images import EcrImage, ecr_image

ClientFor = Callable[[str, str | None, str | None], Any]
"""(service, region, role ARN) -> a boto3 client (``ClientFactory.client``)."""

FOUND_TTL_SECONDS = 600.0
"""How long an image or role found to exist is not asked about again."""
BATCH_GET_IMAGE_MAX = 100
"""BatchGetImage's ``imageIds`` maximum."""


class Preflight:
    """Image and role lookups, cached while found; thread-safe."""

    def __init__(self, client_for: ClientFor, monotonic: Callable[[], float] = time.monotonic):
        self._client_for = client_for
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._found: dict[tuple[str, ...], float] = {}

    def images(self, references: Iterable[str], role_arn: str | None) -> dict[str, Lookup]:
        """Each ECR reference among ``references`` -> whether its repository holds it."""
        by_repository: dict[tuple[str, str, str], list[EcrImage]] = defaultdict(list)
        result: dict[str, Lookup] = {}
        for reference in dict.fromkeys(references):
            image = ecr_image(reference)
            if image is None:
                continue
            if self._cached(("image", image.registry, image.region, image.repository, _id(image))):
                result[reference] = Lookup(Found.FOUND)
            else:
                by_repository[(image.registry, image.region, image.repository)].append(image)
        for (registry, region, repository), wanted in by_repository.items():
            for start in range(0, len(wanted), BATCH_GET_IMAGE_MAX):
                batch = wanted[start : start + BATCH_GET_IMAGE_MAX]
                result.update(self._batch(registry, region, repository, batch, role_arn))
        return result

    def role(self, role_arn: str, account: str, region: str, creds_role: str | None) -> Lookup:
        """Whether the IAM role ``role_arn`` exists (looked up in ``account`` only)."""
        parts = role_arn.split(":", 5)
        if len(parts) < 6 or not parts[5].startswith("role/"):
            return Lookup(Found.MISSING, f"{role_arn!r} is not an IAM role ARN")
        if account and parts[4] and parts[4] != account:
            return Lookup(Found.SKIPPED, f"in account {parts[4]}, not the service's")
        key = ("role", parts[4], role_arn)
        if self._cached(key):
            return Lookup(Found.FOUND)
        name = parts[5].rsplit("/", 1)[-1]
        try:
            with clients.translated_errors("GetRole"):
                self._client_for("iam", region, creds_role).get_role(RoleName=name)
        except clients.AwsError as error:
            if error.retryable:
                raise
            if error.code == "NoSuchEntity":
                return Lookup(Found.MISSING, f"{error.code}: {error.message}")
            return Lookup(Found.UNKNOWN, f"{error.code}: {error.message}")
        self._remember(key)
        return Lookup(Found.FOUND)

    def _batch(
        self,
        registry: str,
        region: str,
        repository: str,
        images: list[EcrImage],
        role_arn: str | None,
    ) -> dict[str, Lookup]:
        client = self._client_for("ecr", region, role_arn)
        try:
            with clients.translated_errors("BatchGetImage"):
                response = client.batch_get_image(
                    registryId=registry,
                    repositoryName=repository,
                    imageIds=[_image_id(image) for image in images],
                )
        except clients.AwsError as error:
            if error.retryable:
                raise
            found = Found.MISSING if error.code == "RepositoryNotFoundException" else Found.UNKNOWN
            detail = f"{error.code}: {error.message}"
            return {image.reference: Lookup(found, detail) for image in images}
        returned = {
            key
            for found in response.get("images") or ()
            for key in _keys(found.get("imageId") or {})
        }
        failures = {
            key: failure
            for failure in response.get("failures") or ()
            for key in _keys(failure.get("imageId") or {})
        }
        unmatched: dict[str, Any] = next(iter(response.get("failures") or ()), {})
        result: dict[str, Lookup] = {}
        for image in images:
            if _id(image) in returned:
                self._remember(("image", registry, region, repository, _id(image)))
                result[image.reference] = Lookup(Found.FOUND)
                continue
            # A found image is the one BatchGetImage returns; a failure that does not
            # echo the id asked for (moto's) still says why the image is not there.
            failure = failures.get(_id(image)) or unmatched
            code = str(failure.get("failureCode", "")) or "NotReturned"
            detail = f"{code}: {failure.get('failureReason', 'BatchGetImage did not return it')}"
            missing = code in ("ImageNotFound", "ImageTagDoesNotMatchDigest")
            result[image.reference] = Lookup(Found.MISSING if missing else Found.UNKNOWN, detail)
        return result

    def _cached(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            at = self._found.get(key)
            return at is not None and self._monotonic() - at < FOUND_TTL_SECONDS

    def _remember(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._found[key] = self._monotonic()
            if len(self._found) > 50_000:
                self._found.clear()


def _id(image: EcrImage) -> str:
    return image.digest or f"tag:{image.tag}"


def _image_id(image: EcrImage) -> dict[str, str]:
    return {"imageDigest": image.digest} if image.digest else {"imageTag": image.tag or ""}


def _keys(image_id: dict[str, Any]) -> list[str]:
    """The ids an ``imageId`` answers for: its digest and its tag."""
    keys = [str(image_id["imageDigest"])] if image_id.get("imageDigest") else []
    if image_id.get("imageTag"):
        keys.append(f"tag:{image_id['imageTag']}")
    return keys
