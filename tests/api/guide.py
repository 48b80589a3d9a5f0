# ruff: noqa: W293 - the guide's code is kept byte for byte, trailing blanks included
"""The Sync Management Guide's examples, copied verbatim (test_guide_copy_is_verbatim checks them
against the guide at SYNC_GUIDE_PATH, else ../shared/spec): response bodies by endpoint, its Python
client and its curl debug commands."""

import json

RESPONSES_TEXT = {
    ("POST", "/api/v1/sync/trigger"): """\
{
  "message": "Sync started successfully",
  "sync_started": true,
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "timestamp": "2025-06-30T12:00:00.000Z"
}
""",
    ("GET", "/api/v1/sync/scheduler/status"): """\
{
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "sync_running": false,
  "last_sync_time": "2025-06-30T11:00:00.000Z",
  "scheduler_active": true,
  "message": "Scheduler status retrieved successfully"
}
""",
    ("POST", "/api/v1/sync/scheduler/trigger"): """\
{
  "message": "Scheduled sync triggered successfully",
  "sync_started": true,
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "timestamp": "2025-06-30T12:00:00.000Z"
}
""",
    ("POST", "/api/v1/sync/start/{organization_id}"): """\
{
  "message": "Sync started successfully in comprehensive mode",
  "sync_id": "sync_org_123_20250630_120000",
  "sync_mode": "comprehensive",
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "started_at": "2025-06-30T12:00:00.000Z"
}
""",
    ("GET", "/api/v1/sync/progress/{sync_id}"): """\
{
  "sync_id": "sync_org_123_20250630_120000",
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "status": "running",
  "progress_percentage": 75.5,
  "current_step": "Processing appointments",
  "total_steps": 4,
  "completed_steps": 3,
  "started_at": "2025-06-30T12:00:00.000Z",
  "estimated_completion": "2025-06-30T12:06:00.000Z",
  "records_processed": 490,
  "records_total": 650,
  "current_operation": "Syncing patient appointments",
  "errors": []
}
""",
    ("GET", "/api/v1/sync/history/{organization_id}"): """\
{
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "total_syncs": 48,
  "successful_syncs": 47,
  "failed_syncs": 1,
  "last_sync_at": "2025-06-30T11:00:00.000Z",
  "last_successful_sync_at": "2025-06-30T11:00:00.000Z",
  "average_sync_duration_seconds": 360.5,
  "recent_syncs": [
    {
      "started_at": "2025-06-30T11:00:00.000Z",
      "completed_at": "2025-06-30T11:06:00.000Z",
      "status": "completed",
      "records_processed": 651,
      "records_success": 651,
      "records_failed": 0,
      "metadata": {
        "sync_type": "comprehensive",
        "patients_processed": 651,
        "appointments_processed": 296
      }
    }
  ]
}
""",
    ("POST", "/api/v1/sync/cleanup"): """\
{
  "message": "Cleaned up 2 stale syncs",
  "cleaned_syncs": 2,
  "timestamp": "2025-06-30T12:00:00.000Z"
}
""",
    ("POST", "/api/v1/cliniko/sync/{organization_id}"): """\
{
  "success": true,
  "message": "Comprehensive Cliniko sync started successfully",
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "sync_mode": "comprehensive",
  "timestamp": "2025-06-30T12:00:00.000Z"
}
""",
    ("GET", "/api/v1/cliniko/status/{organization_id}"): """\
{
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "cliniko_connected": true,
  "api_region": "au4",
  "last_sync": "2025-06-30T11:00:00.000Z",
  "total_patients": 650,
  "sync_enabled": true,
  "credentials_valid": true,
  "sync_status": "healthy"
}
""",
    ("GET", "/api/v1/cliniko/test-connection/{organization_id}"): """\
{
  "success": true,
  "connection_status": "healthy",
  "api_region": "au4",
  "response_time_ms": 245,
  "test_timestamp": "2025-06-30T12:00:00.000Z"
}
""",
    ("POST", "/api/v1/cliniko/import-patients/{organization_id}"): """\
{
  "success": true,
  "message": "Patient import started successfully",
  "organization_id": "org_2xwHiNrj68eaRUlX10anlXGvzX7",
  "import_id": "import_123456",
  "timestamp": "2025-06-30T12:00:00.000Z"
}
""",
    ("ERROR", "envelope"): """\
{
  "success": false,
  "error": "Sync failed",
  "details": {
    "error_type": "api_connection_failed",
    "message": "Unable to connect to Cliniko API",
    "retry_after": 300,
    "error_code": "CLINIKO_API_TIMEOUT"
  },
  "timestamp": "2025-06-30T12:00:00.000Z"
}
""",
}
RESPONSES = {k: json.loads(v) for k, v in RESPONSES_TEXT.items()}

CLIENT_SOURCE = """\
import requests
import time
from typing import Dict, Any

class RoutiqSyncClient:
    def __init__(self, token: str, org_id: str):
        self.token = token
        self.org_id = org_id
        self.base_url = "https://routiq-backend-prod.up.railway.app"
        
    def _headers(self) -> Dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "X-Organization-ID": self.org_id,
            "Content-Type": "application/json"
        }
    
    def trigger_sync(self) -> Dict[str, Any]:
        response = requests.post(
            f"{self.base_url}/api/v1/cliniko/sync/{self.org_id}",
            headers=self._headers()
        )
        response.raise_for_status()
        return response.json()
    
    def get_sync_status(self) -> Dict[str, Any]:
        response = requests.get(
            f"{self.base_url}/api/v1/sync/scheduler/status",
            headers=self._headers()
        )
        response.raise_for_status()
        return response.json()
    
    def wait_for_sync_completion(self, sync_id: str, timeout: int = 600) -> Dict[str, Any]:
        start_time = time.time()
        
        while time.time() - start_time < timeout:
            response = requests.get(
                f"{self.base_url}/api/v1/sync/progress/{sync_id}",
                headers=self._headers()
            )
            
            if response.status_code == 200:
                data = response.json()
                
                if data['status'] in ['completed', 'failed']:
                    return data
                    
                print(f"Progress: {data['progress_percentage']}%")
            
            time.sleep(5)
        
        raise TimeoutError("Sync did not complete within timeout")

# Usage
client = RoutiqSyncClient("your-token", "org_123")
result = client.trigger_sync()
print(f"Sync started: {result['message']}")
"""

CURL_SOURCE = r"""
# Check sync status
curl -X GET "https://routiq-backend-prod.up.railway.app/api/v1/sync/scheduler/status" \
  -H "Authorization: Bearer $TOKEN" \
  -H "X-Organization-ID: $ORG_ID"

# Get recent sync history
curl -X GET "https://routiq-backend-prod.up.railway.app/api/v1/sync/history/$ORG_ID?limit=5" \
  -H "Authorization: Bearer $TOKEN"

# Clean up stale syncs
curl -X POST "https://routiq-backend-prod.up.railway.app/api/v1/sync/cleanup" \
  -H "Authorization: Bearer $TOKEN"

# Test Cliniko connection
curl -X GET "https://routiq-backend-prod.up.railway.app/api/v1/cliniko/test-connection/$ORG_ID" \
  -H "Authorization: Bearer $TOKEN"
"""[1:]
