"""GitHub and GitLab deployment webhooks: what CI deployed elsewhere, recorded in Shipboard."""
