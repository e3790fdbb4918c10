"""The scenario's ECR images, kept in moto's ECR so clients can check a digest exists.

Every image reference of the scenario (``images``, ``commands``, and images added
later through the control API) that is an ECR repository URI pinned by digest,
``<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:<tag>]@sha256:<digest>``,
becomes a repository (``registryId`` the URI's account) holding an image with
exactly that digest.  moto's ``PutImage`` takes the digest as a parameter (as
ECR's ``imageDigest`` does), so no ECR call needs intercepting: the manifest is
a small schema-2 manifest naming the digest, and the digest is *not* its sha256
(documented in ``docs/sandbox.md``).  ``DescribeImages`` and ``BatchGetImage``
by ``imageDigest`` then answer as ECR does: the image, or
``ImageNotFoundException`` / a ``failures`` entry ``ImageNotFound``,
"Requested image not found" (API_BatchGetImage, API_ImageFailure,
https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageFailure.html).
moto reports a missing digest's failure under ``imageTag: "null"``; the sandbox
echoes the requested ``imageId`` as ECR does.

``remove`` deletes an image (``POST /_sandbox/ecr``) and withdraws its digest
from the simulated ECS too: a task launched with it afterwards fails to pull
(``CannotPullContainerError ... not found``), as a deleted image does on ECS.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ecsop.sandbox.behaviours import ImageCatalog

ECR_IMAGE = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"@(?P<digest>sha256:[0-9a-f]{64})$"
)
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class EcrImage:
    reference: str
    registry: str
    region: str
    repository: str
    tag: str | None
    digest: str


def parse(reference: str) -> EcrImage | None:
    """The ECR coordinates of ``reference``, or None if it is not an ECR digest URI."""
    found = ECR_IMAGE.match(reference)
    if found is None:
        return None
    return EcrImage(
        reference,
        found["registry"],
        found["region"],
        found["repository"],
        found["tag"],
        found["digest"],
    )


class EcrImages:
    """Puts images into moto's ECR (account ``account_id``) and takes them out again."""

    def __init__(self, account_id: str, catalog: ImageCatalog, lock: threading.RLock) -> None:
        self._account_id = account_id
        self._catalog = catalog
        self._lock = lock
        self._images: dict[str, EcrImage] = {}
        self._patched: set[int] = set()

    def references(self) -> list[str]:
        with self._lock:
            return sorted(self._images)

    def add_all(self, references: Iterable[str]) -> list[str]:
        """Add the ECR references among ``references``; return those added."""
        added = []
        for reference in references:
            image = parse(reference)
            if image is not None:
                self.add(image)
                added.append(reference)
        return added

    def add(self, image: EcrImage) -> None:
        with self._lock:
            backend = self._backend(image.region)
            if image.repository not in backend.repositories:
                backend.create_repository(
                    repository_name=image.repository,
                    registry_id=image.registry,
                    encryption_config={"encryptionType": "AES256"},
                    image_scan_config={"scanOnPush": False},
                    image_tag_mutability="MUTABLE",
                    tags=[],
                )
            repository = backend.repositories[image.repository]
            if not any(i.get_image_digest() == image.digest for i in repository.images):
                pushed = backend.put_image(
                    repository_name=image.repository,
                    image_manifest=_manifest(image.digest),
                    image_tag=image.tag,
                    image_manifest_mediatype=MANIFEST_MEDIA_TYPE,
                    digest=image.digest,
                )
                pushed.registry_id = repository.registry_id
            self._images[image.reference] = image
            self._catalog.withdrawn.discard(image.digest)

    def remove(self, image: EcrImage) -> bool:
        """Delete the image from its repository; False if ECR did not hold it."""
        with self._lock:
            backend = self._backend(image.region)
            repository = backend.repositories.get(image.repository)
            held = repository is not None and any(
                i.get_image_digest() == image.digest for i in repository.images
            )
            if held:
                backend.batch_delete_image(
                    repository_name=image.repository,
                    registry_id=image.registry,
                    image_ids=[{"imageDigest": image.digest}],
                )
            self._images = {
                ref: i
                for ref, i in self._images.items()
                if not (i.digest == image.digest and i.repository == image.repository)
            }
            self._catalog.withdrawn.add(image.digest)
            return held

    def _backend(self, region: str) -> Any:
        from moto.ecr.models import ecr_backends

        backend = ecr_backends[self._account_id][region]
        if id(backend) not in self._patched:
            self._patched.add(id(backend))
            # moto calls the backend's method; the instance attribute takes precedence.
            setattr(backend, "batch_get_image", _echo_failed_image_ids(backend.batch_get_image))  # noqa: B010
        return backend


def _manifest(digest: str) -> str:
    """A schema-2 image manifest of one layer, unique to ``digest``."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1469,
                "digest": digest,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 31_000_000,
                    "digest": "sha256:" + digest[len("sha256:") :][::-1],
                }
            ],
        },
        sort_keys=True,
    )


def _echo_failed_image_ids(original: Any) -> Any:
    """BatchGetImage failures name the requested ``imageId``, as ECR's do."""

    def batch_get_image(
        repository_name: str,
        registry_id: str | None = None,
        image_ids: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        response: dict[str, Any] = original(repository_name, registry_id, image_ids)
        images = response["images"]
        response["failures"] = [
            {
                "imageId": dict(wanted),
                "failureCode": "ImageNotFound",
                "failureReason": "Requested image not found",
            }
            for wanted in image_ids or []
            if not any(_matches(image, wanted) for image in images)
        ]
        return response

    return batch_get_image


def _matches(image: Any, wanted: dict[str, Any]) -> bool:
    if "imageDigest" in wanted and image.get_image_digest() != wanted["imageDigest"]:
        return False
    return not ("imageTag" in wanted and wanted["imageTag"] not in image.image_tags)
