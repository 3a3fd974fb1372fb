"""What an auditor checks: provenance, GPU telemetry, the manifest, verify, bundles, doctor."""
