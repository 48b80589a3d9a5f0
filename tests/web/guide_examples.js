// The Sync Management Guide's JavaScript examples, copied verbatim (tests/web/test_browser.py
// checks this copy against the guide, SYNC_GUIDE_PATH or ../shared/spec/sync-management-guide.md).
async function monitorSync(syncId) {
  let status = 'starting';
  
  while (status === 'starting' || status === 'running') {
    const response = await fetch(`/api/v1/sync/progress/${syncId}`, {
      headers: { 'Authorization': `Bearer ${token}` }
    });
    
    const progress = await response.json();
    status = progress.status;
    
    console.log(`Progress: ${progress.progress_percentage}% - ${progress.current_step}`);
    
    if (status === 'running') {
      await new Promise(resolve => setTimeout(resolve, 2000)); // Wait 2 seconds
    }
  }
  
  console.log(`Sync ${status}`);
}

async function safeTriggerSync(orgId) {
  try {
    const response = await fetch(`/api/v1/cliniko/sync/${orgId}`, {
      method: 'POST',
      headers: {
        'Authorization': `Bearer ${token}`,
        'Content-Type': 'application/json'
      }
    });

    if (!response.ok) {
      throw new Error(`HTTP ${response.status}: ${response.statusText}`);
    }

    const result = await response.json();
    
    if (!result.success) {
      throw new Error(result.message || 'Sync failed');
    }

    return result;
  } catch (error) {
    console.error('Sync failed:', error.message);
    
    // Handle specific error types
    if (error.message.includes('Rate limit')) {
      // Wait and retry
      await new Promise(resolve => setTimeout(resolve, 60000));
      return safeTriggerSync(orgId);
    }
    
    throw error;
  }
}

// Check sync health
async function checkSyncHealth(orgId) {
  const history = await fetch(`/api/v1/sync/history/${orgId}?limit=5`);
  const data = await history.json();
  
  const recentFailures = data.recent_syncs.filter(sync => 
    sync.status === 'failed' && 
    new Date(sync.started_at) > new Date(Date.now() - 24 * 60 * 60 * 1000)
  ).length;
  
  if (recentFailures > 2) {
    console.warn(`High failure rate: ${recentFailures} failures in last 24h`);
    // Send alert
  }
  
  const avgDuration = data.average_sync_duration_seconds;
  if (avgDuration > 600) { // 10 minutes
    console.warn(`Slow sync performance: ${avgDuration}s average`);
    // Send alert
  }
}
