// The etcd release whose v2 API and answers we reproduce. Its own module so that `coreos --version`
// and etcdctl's version line load nothing else.
export const ETCD_VERSION = "3.4.23";
export const ETCD_CLUSTER_VERSION = "3.4.0";
