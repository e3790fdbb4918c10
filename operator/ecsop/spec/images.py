"""Image references, read: the digest they pin, and where an ECR image lives.

Pure string work shared by the decision (which images a promotion must have
proven, which images the pre-flight checks) and the AWS edge (which ECR
repository to ask). An ECR private image is
``<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]/<repository>[:<tag>][@sha256:<hex>]``
("Pushing an image", Amazon ECR User Guide); anything else (public.ecr.aws,
Docker Hub, another registry) is not ECR's to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ECR = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class EcrImage:
    """Where an ECR image is: the registry (its account), region, repository, and which image."""

    reference: str
    registry: str
    region: str
    repository: str
    tag: str | None
    digest: str | None


def ecr_image(reference: str) -> EcrImage | None:
    """The ECR coordinates of ``reference``, or None when it is not an ECR private image."""
    found = _ECR.match(reference)
    if found is None or not (found["digest"] or found["tag"]):
        return None
    return EcrImage(
        reference,
        found["registry"],
        found["region"],
        found["repository"],
        found["tag"],
        found["digest"],
    )


def digest_of(reference: str) -> str | None:
    """``sha256:<hex>`` of an image pinned by digest, else None."""
    if "@sha256:" not in reference:
        return None
    return "sha256:" + reference.rsplit("@sha256:", 1)[1]


def short(container: str, reference: str) -> str:
    """``api@sha256:1a2b3c4d5e6f…``: how messages name one container's image."""
    digest = digest_of(reference)
    if digest is None:
        return f"{container}={reference}"
    return f"{container}@{digest[:19]}…"


def with_digest(reference: str, digest: str, tag: str | None) -> str:
    """``reference``'s repository, pinned to ``digest`` and labelled ``tag`` (if any).

    What ``ecsop promote`` writes: the downstream keeps its own repository (a
    replica in its account has the same digests), takes the proven digest, and
    the upstream's tag label, so the label never names another image.
    """
    repository = reference.split("@", 1)[0]
    last = repository.rsplit("/", 1)
    if ":" in last[-1]:
        repository = repository[: len(repository) - len(last[-1])] + last[-1].split(":", 1)[0]
    label = f":{tag}" if tag else ""
    return f"{repository}{label}@{digest}"


def tag_of(reference: str) -> str | None:
    """The tag label of a reference (``nginx:1.27@sha256:...`` -> ``1.27``), if any."""
    repository = reference.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None
