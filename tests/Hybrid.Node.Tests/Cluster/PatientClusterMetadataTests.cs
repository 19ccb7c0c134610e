using Hybrid.Core.Interop;
using Hybrid.Node.Cluster;

namespace Hybrid.Node.Tests.Cluster;

/// <summary>
/// <see cref="PatientClusterMetadata"/> resolving compare-and-swaps whose outcome is unknown, against a scripted store.
/// </summary>
public class PatientClusterMetadataTests
{
    private static readonly ClusterCore s_initial = ClusterCore.Create(["a", "b"], ["c1", "c2"], new Dictionary<string, string> { ["r"] = "a" });

    private static PatientClusterMetadata Patient(IClusterMetadata inner) =>
        new(inner, e => e is IOException, ["a", "b"], ["c1", "c2"], ["r"]) { RetryFor = TimeSpan.FromSeconds(10) };

    private static (ClusterDecision Decision, ClusterCore Next) Begin()
    {
        ClusterDecision decision = ClusterDecision.BeginMigration("r", "b");
        DecisionResult result = decision.ApplyTo(s_initial);
        Assert.True(result.Accepted, result.Reason);
        return (decision, result.Core);
    }

    [Fact]
    public void A_write_that_lands_after_its_call_gave_up_counts_as_done_when_the_retry_finds_it()
    {
        // etcd applied the first attempt after the client's deadline, and after the look that followed it: the retry's
        // compare fails against our own write. It must count as done (its effects are carried out), not as a lost race
        // (the caller would decide again, the core would refuse, and the published decision would never be carried out).
        var (decision, next) = Begin();
        var store = new LateStore(s_initial, landsOnAttempt: 2);
        Assert.True(Patient(store).TryReplace(s_initial, [decision], next));
        Assert.Equal(2, store.Attempts);
        Assert.Equal("Locking", store.Current.Phase("r"));
    }

    [Fact]
    public void A_write_that_lands_before_the_look_counts_as_done_without_a_retry()
    {
        var (decision, next) = Begin();
        var store = new LateStore(s_initial, landsOnAttempt: 1);
        Assert.True(Patient(store).TryReplace(s_initial, [decision], next));
        Assert.Equal(1, store.Attempts);
    }

    [Fact]
    public void Decisions_logged_under_their_names_before_they_matched_the_model_replay_as_the_same_decisions()
    {
        // CheckpointCovered, NodeCrashed, NodeRecovered and CoreRefreshed became the model's action names; a cluster's
        // log written before keeps them, and its state is rebuilt by replaying it.
        var (_, next) = Begin();
        ClusterDecision[] steps = [ClusterDecision.CoreRefresh("a", "c1", 2), ClusterDecision.Crash("b"), ClusterDecision.Recover("b"), ClusterDecision.Checkpoint("b")];
        string[] before = ["CoreRefreshed", "NodeCrashed", "NodeRecovered", "CheckpointCovered"];
        (ClusterCore now, ClusterCore old) = (next, next);
        for (int i = 0; i < steps.Length; i++)
        {
            DecisionResult byName = steps[i].ApplyTo(now);
            DecisionResult byOldName = (steps[i] with { Kind = before[i] }).ApplyTo(old);
            Assert.True(byName.Accepted, byName.Reason);
            Assert.True(byOldName.Accepted, byOldName.Reason);
            Assert.Equal(byName.Effects.Select(e => e.ToString()), byOldName.Effects.Select(e => e.ToString()));
            (now, old) = (byName.Core, byOldName.Core);
        }
        Assert.Throws<ArgumentException>(() => (steps[0] with { Kind = "Refreshed" }).ApplyTo(now));
    }

    [Fact]
    public void Another_deciders_write_is_still_a_lost_race()
    {
        var (decision, next) = Begin();
        // A state neither before nor after ours (ours and one more decision): someone else moved first.
        DecisionResult other = ClusterDecision.CoreRefresh("a", "c1", 2).ApplyTo(next);
        Assert.True(other.Accepted, other.Reason);
        var store = new LateStore(s_initial, landsOnAttempt: 2) { Intruder = other.Core };
        var said = new List<string>();
        var patient = new PatientClusterMetadata(store, e => e is IOException, ["a", "b"], ["c1", "c2"], ["r"]) { Report = said.Add };
        Assert.False(patient.TryReplace(s_initial, [decision], next));
        Assert.Equal(2, said.Count);
        Assert.StartsWith("BeginMigration lost to another decider's write after waiting ", said[1], StringComparison.Ordinal);
    }

    [Fact]
    public void A_decision_that_waits_for_the_store_says_so_once_and_again_when_it_got_through()
    {
        var (decision, next) = Begin();
        var said = new List<string>();
        var patient = new PatientClusterMetadata(new LateStore(s_initial, landsOnAttempt: 2), e => e is IOException, ["a", "b"], ["c1", "c2"], ["r"])
        {
            Report = said.Add,
        };
        Assert.True(patient.TryReplace(s_initial, [decision], next));
        Assert.Equal(2, said.Count);
        Assert.Equal("BeginMigration waits for the metadata store: deadline exceeded", said[0]);
        Assert.Matches("^BeginMigration published after waiting [0-9]+ ms for the metadata store$", said[1]);

        // A write that never waited says nothing.
        said.Clear();
        DecisionResult refresh = ClusterDecision.CoreRefresh("a", "c1", 2).ApplyTo(next);
        Assert.True(patient.TryReplace(next, [ClusterDecision.CoreRefresh("a", "c1", 2)], refresh.Core));
        Assert.Empty(said);
    }

    /// <summary>
    /// A store whose first compare-and-swap fails as unavailable without applying; the write then lands when attempt
    /// <c>landsOnAttempt</c> starts (1: before the patient look, 2: after it, just before the retry's own compare).
    /// </summary>
    private sealed class LateStore(ClusterCore initial, int landsOnAttempt) : IClusterMetadata
    {
        private ClusterCore _current = initial;
        private ClusterCore? _pending;

        public int Attempts { get; private set; }

        public ClusterCore? Intruder { get; init; }

        public ClusterCore Current
        {
            get
            {
                if (landsOnAttempt == 1 && _pending is not null)
                    (_current, _pending) = (_pending, null);
                return _current;
            }
        }

        public bool TryReplace(ClusterCore expected, IReadOnlyList<ClusterDecision> decisions, ClusterCore next)
        {
            Attempts++;
            if (Attempts == 1)
            {
                _pending = next;
                throw new IOException("deadline exceeded");
            }
            if (_pending is not null)
                (_current, _pending) = (Intruder ?? _pending, null);
            if (!ReferenceEquals(_current, expected))
                return false;
            _current = next;
            return true;
        }
    }
}
