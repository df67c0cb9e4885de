"""The Cloud Storage stage of an export: where ClickHouse writes a window's Parquet and from
where BigQuery loads it — locations, the HMAC key, the XML API client, ClickHouse's SQL.

May import: core (and third-party libraries: botocore signs the XML API's requests)."""
