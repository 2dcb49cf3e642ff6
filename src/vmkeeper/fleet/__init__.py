"""Fleet operations: many vmkeeper hosts driven through Ansible, in health-gated waves."""
