package guard

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/guard/baseline"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dSensorEvents   = desc("vigil_sensor_events_total", "Events written to the ring buffer by the kernel, per kind.", "kind")
	dSensorKindDrop = desc("vigil_sensor_kind_dropped_total", "Events lost because the ring buffer was full, per kind.", "kind")
	dSensorFiltered = desc("vigil_sensor_filtered_total", "Opens suppressed by the in-kernel prefilter.", "kind")
	dSensorCPUDrop  = desc("vigil_sensor_dropped_total", "Events lost because the ring buffer was full, per CPU.", "cpu")
	dSensorDecode   = desc("vigil_sensor_decode_errors_total", "Ring buffer records that did not decode.")
	dPipelineDrop   = desc("vigil_pipeline_dropped_total", "Events dropped between the sensor reader and the rule pipeline (queue full).")
	dRuleEvents     = desc("vigil_rules_events_total", "Events evaluated, per module.", "module")
	dRuleVerdicts   = desc("vigil_rules_verdicts_total", "Verdicts returned, per module.", "module")
	dRuleQuar       = desc("vigil_rules_quarantined", "1 when a module is quarantined, with the reason.", "module", "reason")
	dRuleBusy       = desc("vigil_rules_busy_seconds_total", "CPU time spent inside each module.", "module")
	dAlerts         = desc("vigil_alerts_total", "Alerts delivered after deduplication.")
	dSuppressed     = desc("vigil_alerts_suppressed_total", "Repeats folded into deduplicated alerts.")
	dOutSent        = desc("vigil_output_sent_total", "Alerts delivered, per sink.", "sink")
	dOutDrop        = desc("vigil_output_dropped_total", "Alerts refused because a sink's queue was full.", "sink")
	dOutFail        = desc("vigil_output_failed_total", "Alerts a sink failed to deliver.", "sink")
	dKillErr        = desc("vigil_enforce_kill_errors_total", "Userspace kills that failed or were refused (process gone, protected).")
	dProfiles       = desc("vigil_baseline_profiles", "Behavior profiles per state.", "state")
	dBaseDrop       = desc("vigil_baseline_dropped_total", "Deviations dropped because the open-deviation table was full.")
	dProcs          = desc("vigil_process_table_entries", "Processes in the process table.")
	dUnresolved     = desc("vigil_container_unresolved_total", "Events whose cgroup could not be attributed.")
	dPolicyApplied  = desc("vigil_policy_applied_total", "Fast-path policies compiled into the kernel for a container.")
	dPolicyErrors   = desc("vigil_policy_errors_total", "Fast-path policies that failed to apply (see the log).")
	dPolicyDropped  = desc("vigil_policy_dropped_total", "Policy applications refused because the queue was full (retried).")
	dLockPushes     = desc("vigil_exec_lock_applied_total", "Profile exec allow-lists put in force in the kernel for a container.")
	dLockErrors     = desc("vigil_exec_lock_errors_total", "Profile locks that failed (see the log).")
	dMetaMissing    = desc("vigil_container_metadata_missing_total", "Container events emitted without runtime metadata.")
	dMetaPending    = desc("vigil_container_metadata_pending_total", "Container events emitted before their runtime lookup completed.")
	dWarmTimeouts   = desc("vigil_container_warm_timeouts_total", "Running containers not resolved within the start-up wait.")
	dCRDObjects     = desc("vigil_baseline_crd_objects_total", "WorkloadProfile specs seeded into detection, or skipped as invalid (crd profiles source).", "result")
	dCRDStatus      = desc("vigil_baseline_crd_status_writes_total", "Status writes to WorkloadProfiles: ok, error (retried next interval), skipped (no object for a learned profile).", "result")
)

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// registerMetrics exposes every component's Stats() at scrape time.
func (g *Guard) registerMetrics() {
	all := []*prometheus.Desc{dSensorEvents, dSensorKindDrop, dSensorFiltered, dSensorCPUDrop, dSensorDecode, dPipelineDrop,
		dRuleEvents, dRuleVerdicts, dRuleQuar, dRuleBusy, dAlerts, dSuppressed, dOutSent, dOutDrop, dOutFail,
		dKillErr, dPolicyApplied, dPolicyErrors, dPolicyDropped, dProfiles, dBaseDrop, dProcs, dUnresolved, dMetaMissing,
		dLockPushes, dLockErrors, dCRDObjects, dCRDStatus}
	_ = g.metrics.CollectFunc(all, func(ch chan<- prometheus.Metric) {
		if st, err := g.sensor.Stats(); err == nil {
			for k, ks := range st.Kinds {
				counter(ch, dSensorEvents, ks.Sent, k.String())
				counter(ch, dSensorKindDrop, ks.Dropped, k.String())
				if ks.Filtered > 0 {
					counter(ch, dSensorFiltered, ks.Filtered, k.String())
				}
			}
			for cpu, d := range st.DroppedPerCPU {
				counter(ch, dSensorCPUDrop, d, strconv.Itoa(cpu))
			}
			counter(ch, dSensorDecode, st.DecodeErrors)
		}
		counter(ch, dPipelineDrop, g.queueDropped.Load())
		if g.rules != nil {
			for _, m := range g.rules.Stats().Modules {
				counter(ch, dRuleEvents, m.Events, m.Name)
				counter(ch, dRuleVerdicts, m.Verdicts, m.Name)
				reason := ""
				v := 0.0
				if m.Quarantined {
					v = 1
					if m.Reason != nil {
						reason = m.Reason.Error()
					}
				}
				gauge(ch, dRuleQuar, v, m.Name, reason)
				ch <- prometheus.MustNewConstMetric(dRuleBusy, prometheus.CounterValue, m.Busy.Seconds(), m.Name)
			}
		}
		counter(ch, dAlerts, g.alerts.Load())
		counter(ch, dSuppressed, g.dedup.Suppressed)
		for _, s := range g.out.Stats() {
			counter(ch, dOutSent, s.Sent, s.Sink)
			counter(ch, dOutDrop, s.Dropped, s.Sink)
			counter(ch, dOutFail, s.Failed, s.Sink)
		}
		counter(ch, dKillErr, g.killErrors.Load())
		counter(ch, dPolicyApplied, g.applied.Load())
		counter(ch, dPolicyErrors, g.applyErrors.Load())
		counter(ch, dLockPushes, g.lockPushes.Load())
		counter(ch, dLockErrors, g.lockErrors.Load())
		counter(ch, dPolicyDropped, g.applyDropped.Load())
		if g.crdWatch != nil {
			st := g.crdWatch.Stats()
			counter(ch, dCRDObjects, st.Seeded, "seeded")
			counter(ch, dCRDObjects, st.Invalid, "invalid")
			counter(ch, dCRDStatus, st.StatusWrites, "ok")
			counter(ch, dCRDStatus, st.StatusErrors, "error")
			counter(ch, dCRDStatus, st.StatusSkipped, "skipped")
		}
		if g.detector != nil {
			g.detMu.Lock()
			sums := g.detector.Profiles()
			bst := g.detector.Stats()
			g.detMu.Unlock()
			byState := map[baseline.State]int{baseline.StateLearning: 0, baseline.StateReady: 0, baseline.StateLocked: 0}
			for _, s := range sums {
				byState[s.State]++
			}
			for st, n := range byState {
				gauge(ch, dProfiles, float64(n), st.String())
			}
			counter(ch, dBaseDrop, bst.Dropped)
		}
		gauge(ch, dProcs, float64(g.procs.Len()))
		cs := g.containers.Stats()
		counter(ch, dUnresolved, cs.Unresolved)
		counter(ch, dMetaMissing, cs.MetaMissing)
	})
	// The container resolver's start-up and lookup counters.
	_ = g.metrics.CollectFunc([]*prometheus.Desc{dMetaPending, dWarmTimeouts}, func(ch chan<- prometheus.Metric) {
		cs := g.containers.Stats()
		counter(ch, dMetaPending, cs.MetaPending)
		counter(ch, dWarmTimeouts, cs.WarmTimeouts)
	})
	g.metrics.Registry.MustRegister(g.batchLatency)
}
