use super::*;
use nodeflow_engine::ValueLimits;

#[test]
fn constructors_check_length_rank_and_size() {
    let t = Tensor::from_f32(vec![2, 3], vec![1.0; 6]).unwrap();
    assert_eq!(
        (t.dtype(), t.shape(), t.len()),
        (DType::F32, &[2usize, 3][..], 6)
    );
    assert_eq!(
        Tensor::from_f32(vec![2, 3], vec![1.0; 5]).unwrap_err(),
        TensorError::DataLength {
            shape: vec![2, 3],
            len: 5
        }
    );
    let err = Tensor::from_i64(vec![1; MAX_RANK + 1], vec![0]).unwrap_err();
    assert_eq!(err.reason(), "tensor.rank");
    let err = Tensor::from_bool(vec![1 << 20, 1 << 20], Vec::new()).unwrap_err();
    assert_eq!(err.reason(), "tensor.too_large");
    let err = Tensor::from_f32(vec![usize::MAX, 2], Vec::new()).unwrap_err();
    assert_eq!(err.reason(), "tensor.too_large");
}

#[test]
fn clones_share_the_buffer_and_writes_copy_first() {
    let a = Tensor::from_f32(vec![4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let b = a.clone();
    assert!(a.shares_buffer_with(&b));
    let mut owned = b.into_array::<f32>().unwrap();
    owned[[0]] = 9.0;
    assert_eq!(a.to_f32_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    // Sole owner: no copy.
    let c = Tensor::from_f32(vec![2], vec![5.0, 6.0]).unwrap();
    let ptr = c.as_f32().unwrap().as_ptr();
    assert_eq!(c.into_array::<f32>().unwrap().as_ptr(), ptr);
}

#[test]
fn heap_bytes_are_elements_times_size() {
    let f = Tensor::from_f32(vec![3, 5], vec![0.0; 15]).unwrap();
    let i = Tensor::from_i64(vec![7], vec![0; 7]).unwrap();
    let b = Tensor::from_bool(vec![9], vec![true; 9]).unwrap();
    assert_eq!(f.heap_bytes(), 60);
    assert_eq!(i.heap_bytes(), 56);
    assert_eq!(b.heap_bytes(), 9);
    assert_eq!(Tensor::scalar_f32(1.0).heap_bytes(), 4);
}

#[test]
fn encodings_round_trip_through_the_registry() {
    let registry = tensor_registry();
    let tensors = [
        Tensor::from_f32(vec![2, 2], vec![1.5, -0.0, f32::NAN, f32::INFINITY]).unwrap(),
        Tensor::from_i64(vec![3], vec![i64::MIN, 0, i64::MAX]).unwrap(),
        Tensor::from_bool(vec![2, 1], vec![true, false]).unwrap(),
        Tensor::scalar_f32(3.25),
        Tensor::from_f32(vec![0, 4], Vec::new()).unwrap(),
    ];
    for tensor in tensors {
        let mut bytes = Vec::new();
        SlotValue::encode(&tensor, &mut bytes).unwrap();
        assert_eq!(bytes, tensor.encode());
        let back = registry
            .decode(Tensor::TAG, &bytes, &ValueLimits::default())
            .unwrap_or_else(|e| panic!("{tensor:?}: {e}"));
        assert!(back.eq_value(&tensor), "{tensor:?} came back as {back:?}");
        assert_eq!(back.heap_bytes(), tensor.heap_bytes());
    }
}

#[test]
fn equality_compares_dtype_shape_and_bits() {
    let a = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();
    assert_eq!(a, Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap());
    assert_ne!(a, Tensor::from_f32(vec![2, 1], vec![1.0, 2.0]).unwrap());
    assert_ne!(a, Tensor::from_i64(vec![2], vec![1, 2]).unwrap());
    assert_ne!(
        Tensor::scalar_f32(0.0),
        Tensor::scalar_f32(-0.0),
        "bit equality tells signed zeros apart"
    );
}

#[test]
fn protos_convert_both_ways() {
    for tensor in [
        Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap(),
        Tensor::from_i64(vec![1, 2], vec![3, 4]).unwrap(),
        Tensor::from_bool(vec![3], vec![true, false, true]).unwrap(),
    ] {
        assert_eq!(Tensor::from_proto(&tensor.to_proto()).unwrap(), tensor);
    }
    let bad = TensorProto::new(vec![-1], Vec::new());
    assert_eq!(
        Tensor::from_proto(&bad).unwrap_err().reason(),
        "tensor.bad_shape"
    );
}
