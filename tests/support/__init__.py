"""What tests share, one module per thing: stack (this run's names, a local stack), http
(accepted writes, tasks, error bodies), catalog (course bodies, ids), keys, metrics, stores
(in-process PostgreSQL and Milvus), inprocess (the app in-process, for tests/api), learning (a
learner community), faults (the fault-injection harness), reports. Test modules import from
here, never from each other."""
