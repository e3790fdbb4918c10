"""The release flow: what must hold before a *new* release is deployed.

The runbook's flow (deploy to staging, verify, promote the same image to
production after an approval, inside a change window) as release-level
policies, each one pure module judged from the observation:

- ``preflight``: every ECR image digest exists, the execution role exists;
- ``promotion``: ``spec.promotion.from`` releases proved every image;
- ``ordering``: ``spec.dependsOn`` releases are Synced;
- ``approval``: ``rollout.approval: manual`` and ``ecsop approve``;
- ``windows``: allow and deny windows (the spec's and the policy file's).

``hold`` runs them in that order for ``deploying.held`` and says which inputs a
pass must gather (``needs``); ``inputs`` holds those inputs. Rollbacks never
come here, and a return to the proven last-good release passes every check
but the pre-flight. Nothing in this package imports at package level, so
``ecsop.decision.observation`` can import ``inputs`` without a cycle.
"""
