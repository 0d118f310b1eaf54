"""Custom resource of the acceptance test's teardown stack: on Delete, empty the buckets the app keeps (every object
version and delete marker), so that the app stack, deployed with DESTROY removal policies, can delete them.

Properties: {"Buckets": [bucket names]}. Create/Update do nothing. Deleted before the app stack (it depends on it).
"""

import boto3
from botocore.exceptions import ClientError


def empty(bucket):
    s3 = boto3.client("s3")
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})


def on_event(event, _context):
    if event["RequestType"] == "Delete":
        for bucket in event["ResourceProperties"].get("Buckets", []):
            try:
                empty(bucket)
            except ClientError as error:
                if error.response["Error"]["Code"] != "NoSuchBucket":
                    raise
    return {"PhysicalResourceId": event.get("PhysicalResourceId") or "empty-buckets-on-delete"}
