//! Cyclon peer sampling over the wire: Nodes of one Runtime, bootstrapped on a ring, exchange views through `Shuffle` → `Send` (control-plane request for `OnShuffle`) → `OnReply`, and their views fill up and mix.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use nodeflow::{
    ActorOutput, Cyclon, CyclonConfig, ExecOrigin, GraphBuilder, Node, NodeSpec, PeerId,
    PeersComponent, Runtime, SiteId, Tensor,
};

const NODES: u64 = 12;
const PATIENCE: Duration = Duration::from_secs(10);

fn spec(me: u64) -> NodeSpec {
    NodeSpec::new(move || {
        let mut b = GraphBuilder::new("gossip");
        let go = b.input("go");
        let [entries, target] = b.op("Shuffle", [go]).domain("peers").outputs::<2>();
        let answer = b
            .syscall("Send", [entries, target])
            .attr("component", 0)
            .attr("op", "OnShuffle")
            .attr("request", 1)
            .output();
        let size = b.op("OnReply", [answer, target]).domain("peers").output();
        b.output(size, "view");
        let gossip = b.build().unwrap();

        let mut b = GraphBuilder::new("sample");
        let go = b.input("go");
        let peers = b.op("Sample", [go]).domain("peers").attr("k", 4).output();
        b.output(peers, "peers");
        let sample = b.build().unwrap();

        let successor = PeerId::new(me % NODES + 1);
        let config = CyclonConfig {
            view_size: 4,
            shuffle_len: 2,
            max_age: 30,
        };
        let cyclon = Cyclon::new(PeerId::new(me), [successor], config, me).unwrap();
        Node::builder(PeerId::new(me))
            .component("peers", Box::new(PeersComponent::new(Box::new(cyclon))))
            .graph(gossip)
            .graph(sample)
    })
}

fn first_tensor(output: ActorOutput) -> Option<(u64, Tensor)> {
    match output {
        ActorOutput::ExecFinished {
            origin: ExecOrigin::Ticket(ticket),
            outputs,
            ..
        } => outputs
            .first()
            .and_then(|(_, v)| v.downcast_ref::<Tensor>().cloned())
            .map(|t| (ticket, t)),
        _ => None,
    }
}

#[test]
fn views_fill_and_mix_through_exchanges_over_the_wire() {
    let runtime = Runtime::builder().compute_threads(1).build().unwrap();
    let nodes: Vec<_> = (1..=NODES)
        .map(|p| runtime.spawn_node(spec(p)).unwrap())
        .collect();
    let subs: Vec<_> = nodes.iter().map(|n| n.subscribe().unwrap()).collect();
    let go = || vec![("go".to_owned(), Box::new(Tensor::scalar_i64(0)) as Box<_>)];
    let mut ticket = 0;
    let mut sizes = vec![0i64; NODES as usize];
    for _round in 0..12 {
        for (i, node) in nodes.iter().enumerate() {
            ticket += 1;
            node.invoke(SiteId::new(0), go(), ticket).unwrap();
            // Each exchange finishes (answer merged) before the next starts.
            loop {
                let out = subs[i].recv_timeout(PATIENCE).unwrap();
                if let Some((t, view)) = first_tensor(out) {
                    if t == ticket {
                        sizes[i] = view.to_i64_vec().unwrap()[0];
                        break;
                    }
                }
            }
        }
    }
    assert!(
        sizes.iter().all(|&s| s == 4),
        "every view filled to view_size: {sizes:?}"
    );
    let mut far = 0;
    let mut in_degree = vec![0usize; NODES as usize + 1];
    for (i, node) in nodes.iter().enumerate() {
        ticket += 1;
        node.invoke(SiteId::new(1), go(), ticket).unwrap();
        let peers = loop {
            if let Some((t, peers)) = first_tensor(subs[i].recv_timeout(PATIENCE).unwrap()) {
                if t == ticket {
                    break peers.to_i64_vec().unwrap();
                }
            }
        };
        let me = i as i64 + 1;
        let distinct: HashSet<_> = peers.iter().collect();
        assert_eq!(distinct.len(), peers.len());
        assert!(!peers.contains(&me), "a view never holds its owner");
        for &p in &peers {
            in_degree[p as usize] += 1;
            if p != me % NODES as i64 + 1 {
                far += 1;
            }
        }
    }
    assert!(
        far >= 24,
        "views mixed beyond the ring successor: {far} of 48 entries"
    );
    assert!(
        in_degree[1..].iter().all(|&d| d >= 1),
        "every Node is known to someone: {in_degree:?}"
    );
    let report = runtime.shutdown(PATIENCE);
    assert_eq!(report.totals.nodes_failed, 0);
    assert_eq!(report.totals.accepted, report.totals.processed);
}
